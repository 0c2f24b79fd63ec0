"""Exceptions with a meaning for operators, each mapped to a documented exit code."""

from __future__ import annotations


class SigmabatchError(Exception):
    """Base class. ``exit_code`` is what a phase entrypoint exits with."""

    exit_code = 1


class ConfigError(SigmabatchError):
    """A setting (environment variable or flag) has a bad value."""

    exit_code = 2


class BadInputError(SigmabatchError):
    """Input data or arguments are invalid; nothing was written."""

    exit_code = 2


class ProviderError(SigmabatchError):
    """A market-data provider failed (outage, no network, malformed payload)."""

    exit_code = 1


class LockBusyError(SigmabatchError):
    """Another run holds the batch lock."""

    exit_code = 4


class FencedOutError(SigmabatchError):
    """The run lost the batch lock (taken over after its lease ran out, or its runner was stopped): the
    phase aborts its transaction and writes nothing."""

    exit_code = 5


EXIT_OK = 0


class UnknownReferenceError(SigmabatchError):
    """Rows refer to ids missing from their reference table (factor definitions, stress scenarios); the
    write is refused whole (the repository's check in place of a per-row foreign key, migration 0009)."""

    exit_code = 1
