"""Errors that a user can act on: the entry points print them as one line and exit with status 2."""


class CnnjaxError(Exception):
    """Base of every error whose message says what to do."""


class NonFiniteLossError(CnnjaxError):
    """The loss became NaN/Inf; the run stopped and its last good checkpoint was kept."""
