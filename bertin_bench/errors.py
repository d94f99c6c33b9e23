"""One error path for every command: an expected failure becomes one line, no traceback.

Expected failures are bad settings and names (``ValueError``, ``KeyError``), missing or clashing
files (``FileNotFoundError``, ``FileExistsError``) and I/O or decode errors (``OSError``,
``EOFError`` from a truncated gzip, ``UnicodeDecodeError``). Their messages name the file (and
line when known). With ``bench -v`` the traceback is logged too. Click would otherwise take an
uncaught ``EOFError`` for the user pressing Ctrl-D and print only "Aborted!".
"""

from __future__ import annotations

import functools
import logging

import click

from bertin_bench.locks import OutputLocked

# OutputLocked: another live run holds the output directory (its message names the holder).
EXPECTED = (KeyError, ValueError, FileNotFoundError, FileExistsError, OSError, EOFError, OutputLocked)

log = logging.getLogger("bench")


def message(err: BaseException) -> str:
    """A user-facing line for an expected error (a KeyError's str() is its repr'd key)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    if isinstance(err, EOFError):
        return f"truncated input: {err}" if str(err) else "truncated input (unexpected end of file)"
    return str(err) or type(err).__name__


def user_errors(fn):
    """Decorate a click command: expected failures exit 1 with one clear line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EXPECTED as err:
            log.debug("traceback of the error below", exc_info=True)
            raise click.ClickException(message(err)) from None

    return wrapper
