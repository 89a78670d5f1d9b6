"""Library errors. The CLI turns MmsaError into a one-line message and a non-zero exit."""


class MmsaError(Exception):
    """A user-facing problem (bad input, missing weights, invalid folder): no traceback."""


class ConfigError(MmsaError):
    """An invalid option value: the message names the value and what is allowed."""


class WeightsNotFoundError(MmsaError):
    """Pretrained weights were asked for but are not available offline."""


class DataError(MmsaError):
    """Input data cannot be read (missing file, missing column, bad label)."""
