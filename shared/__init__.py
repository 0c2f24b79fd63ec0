"""sigmabatch shared library: settings, calendar, providers, storage and pure analytics."""
