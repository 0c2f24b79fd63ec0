"""Checks made before a command starts anything: a bad path or setting is refused in one line, exit 2.

Each check only looks (and at most creates and removes one probe file in a folder that exists): a run
that fails here has written nothing, recorded nothing and left no ``var/runs/<run-id>`` folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shared.errors import ConfigError
from shared.settings import Settings


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent (relative paths stay relative)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _can_write(folder: Path) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:  # access() can be wrong (ACLs, some network file systems): try for real
        with tempfile.TemporaryFile(dir=folder, prefix=".sigmabatch-probe-"):
            return True
    except OSError:
        return False


def writable_folder(path: Path | str, label: str) -> None:
    """Refuse ``path`` unless it is, or could be created as, a folder this process may write into.
    ``label`` starts the message: the variable or flag with its value."""
    path = Path(path)
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise ConfigError(f"{label}: {base} is a regular file, not a folder")
    if not _can_write(base):
        raise ConfigError(f"{label}: {base} is not writable (read-only file system or no permission)")


def writable_file(path: Path | str, label: str) -> None:
    """Refuse ``path`` unless a file can be written there (its folder exists or can be created)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{label}: {path} is a folder; give a file name, e.g. {path / 'report.html'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{label}: {path} is not writable")
    writable_folder(path.parent, label)


def provider_source(settings: Settings, source: str = "SIGMABATCH_PROVIDER") -> None:
    """The file provider's path must exist (and a folder must hold prices.csv or prices.parquet)."""
    kind, _, arg = settings.provider.partition(":")
    if kind != "file" or not arg:
        return
    path = Path(arg)
    if not path.exists():
        raise ConfigError(
            f"{source}={settings.provider}: {path} does not exist "
            "(the file provider needs a prices file or a folder holding prices.csv)"
        )
    if path.is_dir() and not any((path / n).is_file() for n in ("prices.csv", "prices.parquet")):
        raise ConfigError(
            f"{source}={settings.provider}: the folder {path} has no prices.csv or prices.parquet"
        )


def sqlite_folder(settings: Settings) -> None:
    """A SQLite database needs a writable folder (it writes its journal beside the file)."""
    url = settings.database_url
    if not url.startswith("sqlite"):
        return
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        writable_folder(Path(path).parent, f"SIGMABATCH_DATABASE_URL={url}")


def run(
    settings: Settings, workdir: Path | str = ".", *, provider_source_name: str = "SIGMABATCH_PROVIDER"
) -> None:
    """Everything ``sigmabatch run`` will write to, and where its prices come from."""
    provider_source(settings, provider_source_name)
    sqlite_folder(settings)
    if not settings.artifacts_are_s3:
        writable_folder(settings.artifacts_path, f"SIGMABATCH_ARTIFACTS={settings.artifacts}")
    writable_folder(Path(workdir) / "var" / "runs", "the run-log folder var/runs")
