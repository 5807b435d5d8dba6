"""Retention's file primitives (what is deleted, and why: :mod:`.retention`): local paths only, JSON
Lines appends in one write, atomic rewrites that give way to a concurrent append (:class:`_Changed`:
read the file again), the run's lock, the temporary files an interrupted run left behind, and the
row files of a store directory with its run directories (``<dir>/<RUN_ID>/``).
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterable, Optional

LOCK_NAME = ".retention.lock"
TEMP_PREFIX = ".retention-"


class RetentionError(ValueError):
    """A retention request that cannot be carried out; the message is one line."""


class _Changed(Exception):
    """The file changed between reading and replacing it (someone appended): read it again."""


def _local(path: Optional[str], what: str) -> Optional[str]:
    """``path`` when it is local (``file://`` stripped); RetentionError for another filesystem."""
    if not path:
        return None
    text = str(path)
    if text.startswith("file://"):
        return text[len("file://"):]
    if "://" in text:
        raise RetentionError(f"{what} {text} is not a local path: retention rewrites files atomically and "
                             "appends to logs, which needs a local (or mounted) filesystem")
    return text


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, timezone.utc)


def _append_lines(path: str, records: Iterable[dict]) -> None:
    """Append JSON lines with one write (O_APPEND), creating the file and its directory."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
    if not data:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _unchanged(path: str, before: os.stat_result) -> None:
    now = os.stat(path)
    if (now.st_size, now.st_mtime_ns, now.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino):
        raise _Changed()


def _replace_atomically(path: str, write: Callable[[str], None], before: os.stat_result) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, give it ``path``'s modification
    time, then rename it over ``path`` unless ``path`` changed since ``before`` (:class:`_Changed`)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, before.st_mode & 0o777)
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
        _unchanged(path, before)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _remove(path: str, before: os.stat_result) -> None:
    _unchanged(path, before)
    os.remove(path)


def _write_lines(path: str, lines: list) -> None:
    with open(path, "wb") as fh:
        fh.writelines(lines)


def _row_files(directory: Optional[str], exts=(".parquet", ".jsonl")) -> list:
    """The row files under ``directory`` and its sub-directories (every run's ``<dir>/<RUN_ID>/``),
    sorted; hidden files and folders (temporary ones) are left out."""
    if not directory or not os.path.isdir(directory):
        return []
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in files if not n.startswith(".") and os.path.splitext(n)[1] in exts]
    return sorted(found)


@contextmanager
def _exclusive(log_dir: str):
    """One run at a time: an exclusive, non-blocking ``flock`` in ``log_dir``."""
    os.makedirs(log_dir, exist_ok=True)
    fd = os.open(os.path.join(log_dir, LOCK_NAME), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetentionError("another retention run holds the lock; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def _remove_stale_temps(directories: Iterable[Optional[str]]) -> None:
    """Temporary files an interrupted run left behind (they may hold expired rows), in each
    directory and its run directories."""
    for directory in directories:
        if directory and os.path.isdir(directory):
            for root, dirs, files in os.walk(directory):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    if name.startswith(TEMP_PREFIX):
                        os.remove(os.path.join(root, name))
