"""User-facing errors.

Raise :class:`GeoLinkError` (or a subclass) for anything the user can fix: a wrong path, a
malformed file, an unknown config key. The CLI prints the message without a traceback and exits
with status 2. Messages name the file or key and say what was expected.
"""


class GeoLinkError(Exception):
    """An error caused by user input, printed by the CLI without a traceback."""


class ConfigError(GeoLinkError):
    """Unknown or ill-typed configuration key or value."""


class DataError(GeoLinkError):
    """A dataset root, layout, or file is missing or malformed."""


class MissingDependencyError(GeoLinkError):
    """An optional dependency is not installed; the message carries the install hint."""
