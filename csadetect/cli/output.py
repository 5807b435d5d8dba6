"""What every command prints, in one place (DESIGN §11): JSON Lines on stdout (:func:`emit`),
people's messages and progress on stderr (:func:`say`, :class:`Progress`), and one-line errors
with exit code 1 for the errors a handler expects (:func:`handled`) — never a traceback, never
content."""
from __future__ import annotations

import functools
import json
import sys

from csadetect.core.timeutil import utc_now

PROGRESS_SECONDS = 10.0  # the least time between two progress lines when stderr is not a terminal


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


class _Throttle:
    """Whether a progress line is due: at most one every :data:`PROGRESS_SECONDS` of ``clock``."""

    def __init__(self, clock=utc_now):
        self.clock, self.last = clock, clock()

    def due(self) -> bool:
        now = self.clock()
        if (now - self.last).total_seconds() < PROGRESS_SECONDS:
            return False
        self.last = now
        return True


class Progress:
    """Progress of work over ``total`` files on stderr: a bar on a terminal; elsewhere (a log) a line
    ``<what> file N of TOTAL`` at most every :data:`PROGRESS_SECONDS`, so long work is never silent."""

    def __init__(self, total: int, what: str, clock=utc_now):
        self.total, self.what, self.done = total, what, 0
        self.bar = None
        if total > 1 and sys.stderr.isatty():
            from tqdm import tqdm  # lazily: most commands print no progress

            self.bar = tqdm(total=total, unit="file", file=sys.stderr)
        self.throttle = _Throttle(clock)

    def update(self) -> None:
        """One more file started."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.total > 1 and self.throttle.due():
            say(f"{self.what} file {self.done} of {self.total}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Count:
    """Progress of work whose total is not known in advance (rows of one large input): a line
    ``<what>: N rows`` on stderr at most every :data:`PROGRESS_SECONDS`, so long work is never silent."""

    def __init__(self, what: str, clock=utc_now):
        self.what, self.throttle = what, _Throttle(clock)

    def __call__(self, done: int) -> None:
        if self.throttle.due():
            say(f"{self.what}: {done:,} rows")
