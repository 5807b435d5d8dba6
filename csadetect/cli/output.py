"""What every command prints, in one place (DESIGN §11): JSON Lines on stdout (:func:`emit`),
people's messages and progress on stderr (:func:`say`), and one-line errors with exit code 1 for
the errors a handler expects (:func:`handled`) — never a traceback, never content."""
from __future__ import annotations

import functools
import json
import sys


def say(msg: str) -> None:
    """A message for people: stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)


def emit(obj) -> None:
    """One JSON line on stdout, flushed."""
    print(json.dumps(obj), flush=True)


def error(msg: str) -> None:
    """``error: <msg>`` on stderr."""
    say(f"error: {msg}")


def handled(expected):
    """A decorator for ``(args) -> exit code`` handlers: the errors ``expected()`` names (a callable
    returning a tuple of exception types) and OSError become one line on stderr and exit code 1."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(args) -> int:
            try:
                return func(args)
            except expected() as exc:
                error(str(exc))
            except OSError as exc:
                error(f"{exc.filename or ''}: {exc.strerror or type(exc).__name__}".removeprefix(": "))
            return 1

        return wrapper

    return decorate
