"""Errors the storage layer raises for its callers to explain."""


class SewamitraError(Exception):
    """Base of the project's own errors."""


class ConfigError(SewamitraError):
    """config.yaml or an environment override is not valid; the message names the key."""


class ImportFileError(SewamitraError):
    """A CSV import file that cannot be read at all (no header, wrong columns)."""
