"""Errors a user can act on.

Every error raised for bad input derives from :class:`TfdgmError`; the CLI prints its message
(which names the problem and the fix) and exits with status 2 instead of a traceback.
"""


class TfdgmError(Exception):
    """Base class of the errors that stop a command before (or instead of) a crash."""

    exit_code = 2


class ConfigError(TfdgmError, ValueError):
    """A configuration key, value or combination of options is invalid."""


class DataError(TfdgmError):
    """A dataset is missing, unreadable, or does not match what the model needs."""


class NonFiniteLossError(TfdgmError, FloatingPointError):
    """Training produced a NaN or Inf; the last good checkpoint was left untouched."""

    exit_code = 3
