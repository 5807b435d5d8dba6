"""Descriptor 2 caught for a block: the one way the package hears what native code (TensorFlow's
start-up, vpdq's C++) writes to stderr around Python, to filter it or turn it into a one-line
reason instead of stray lines.

``with captured_fd2() as captured:`` points file descriptor 2 (and so ``sys.stderr``) at a
temporary file for the block; once it ends, ``captured`` holds one string, all that was written.
The caller writes back whatever it does not use: another thread's log line written meanwhile must
not be lost.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def captured_fd2():
    """Point file descriptor 2 (and ``sys.stderr``) at a temporary file for the block; yields a
    list that holds the captured text once the block ends."""
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", errors="replace"))
