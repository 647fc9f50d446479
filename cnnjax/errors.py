"""Errors that a user can act on: the entry points print them as one line and exit with status 2."""

from __future__ import annotations


class CnnjaxError(Exception):
    """Base of every error whose message says what to do."""


class NonFiniteLossError(CnnjaxError):
    """The loss became NaN/Inf; the run stopped and its last good checkpoint was kept."""


def first_line(err: BaseException, limit: int | None = 300) -> str:
    """The first line of an error's message (at most `limit` characters), or its type name if it has none.

    Library errors (Orbax, TensorStore, torch, TFDS) carry long multi-line texts; a one-line user error
    quotes only their first line. Orbax's trailing ". See full ..." pointer is dropped.
    """
    text = str(err).strip()
    if not text:
        return type(err).__name__
    return text.splitlines()[0].split(". See full")[0][:limit]
