"""ResolveContent: fetch ``content_uri`` bytes, but only from where the operator allows.

This is the one stage that reads content from storage, so it is explicit in the graph. An event's
URI is read only when it lies under one of ``content.allowed_uri_prefixes`` (none by default, so
no URI is read) or under the folder of the pipeline's own ``--input_media_glob``:

- URLs (``gs://``, ``s3://``, ...) go through Beam's filesystems and must start with an allowed
  URL prefix, with no ``.`` or ``..`` segment;
- local paths are read only under an explicitly allowed absolute directory, after resolving
  symbolic links, never under ``/proc``, ``/sys`` or ``/dev``, and only when the path is a regular
  file (checked before it is opened, and again on the opened descriptor: no FIFOs, devices or
  sockets);
- the read stops at ``limits.max_content_bytes`` and at ``content.read_timeout_seconds``.

A refused or failed read becomes a dead letter whose reason names the rule, never the URI."""
from __future__ import annotations

import dataclasses
import os
import queue
import re
import stat
import threading
import time
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from csadetect.config.settings import ContentSettings, Limits
from csadetect.core import fs
from csadetect.events.event import dead_letter
from csadetect.transforms.common import DEAD_LETTER, counter, guarded

SPECIAL_DIRS = ("/proc", "/sys", "/dev")
_CHUNK = 1 << 20
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_GLOB_CHARS = re.compile(r"[*?\[{]")


class UriRefused(ValueError):
    """A content_uri that is not read; the message names the rule and never the URI."""


def _special(real: str) -> bool:
    return any(real == d or real.startswith(d + "/") for d in SPECIAL_DIRS)


def _local_prefix(prefix: str) -> str:
    """An allowed local directory, symbolic links resolved, ending in '/'."""
    real = os.path.realpath(prefix)
    return real if real.endswith("/") else real + "/"


def glob_prefix(pattern: str) -> str:
    """The folder a media glob reads from (the part before its first wildcard), as a prefix."""
    head = _GLOB_CHARS.split(pattern, 1)[0]
    folder = head[: head.rfind("/") + 1] if "/" in head else ""
    if fs.is_url(pattern):
        return folder
    return _local_prefix(folder or os.getcwd())


class UriPolicy:
    """Which URIs may be read: URL prefixes as given, local ones resolved once."""

    def __init__(self, prefixes: Sequence[str]):
        self.urls = tuple(p for p in prefixes if fs.is_url(p))
        self.local = tuple(_local_prefix(p) for p in prefixes if not fs.is_url(p))

    def check(self, uri: str) -> Optional[str]:
        """``None`` for an allowed URL, the resolved path for an allowed local file; raises
        UriRefused naming the rule otherwise."""
        if not isinstance(uri, str) or not uri or _BAD_CHARS.search(uri):
            raise UriRefused("content_uri is malformed")
        if fs.is_url(uri):
            scheme, rest = uri.split("://", 1)
            if scheme.lower() == "file":
                raise UriRefused("content_uri scheme file:// is not allowed")
            if any(seg in (".", "..") for seg in rest.split("/")):
                raise UriRefused("content_uri has a '.' or '..' segment")
            if not any(uri.startswith(p) for p in self.urls):
                raise UriRefused("content_uri is not under an allowed prefix")
            return None
        if not self.local:
            raise UriRefused("content_uri is a local path and no local prefix is allowed")
        real = os.path.realpath(uri)  # relative to the working directory, links resolved
        if _special(real):
            raise UriRefused("content_uri is under /proc, /sys or /dev")
        if not any(real.startswith(p) for p in self.local):
            raise UriRefused("content_uri is not under an allowed prefix")
        return real


def _read_local(path: str, max_bytes: int) -> bytes:
    """A regular file's bytes: its type is checked before opening (no FIFO, device or socket is
    ever opened) and again on the descriptor (no symbolic link swapped in between)."""
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise UriRefused("content_uri is not a regular file")
    if before.st_size > max_bytes:
        raise UriRefused(f"content exceeds the limit of {max_bytes} bytes")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise UriRefused("content_uri is not a regular file")
        return fh.read(max_bytes + 1)


def _read_url(uri: str, max_bytes: int, deadline: float, timeout: float) -> bytes:
    parts, size = [], 0
    with FileSystems.open(uri, compression_type="uncompressed") as fh:
        while size <= max_bytes:
            if time.monotonic() > deadline:
                raise UriRefused(f"content_uri read took longer than {timeout:g} s")
            block = fh.read(min(_CHUNK, max_bytes + 1 - size))
            if not block:
                break
            parts.append(block)
            size += len(block)
    return b"".join(parts)


def read_uri(uri: str, max_bytes: int, policy: UriPolicy, timeout: float = 30.0) -> bytes:
    """The bytes at ``uri`` when ``policy`` allows it, at most ``max_bytes`` and within
    ``timeout`` seconds (a read that stalls is abandoned to a daemon thread). Raises UriRefused
    (ValueError) naming the rule; filesystem errors propagate as they are."""
    local = policy.check(uri)
    deadline = time.monotonic() + timeout
    result: queue.Queue = queue.Queue(maxsize=1)

    def work():
        try:
            data = _read_local(local, max_bytes) if local else _read_url(uri, max_bytes, deadline, timeout)
            result.put((data, None))
        except BaseException as exc:  # handed to the caller
            result.put((None, exc))

    threading.Thread(target=work, name="csad-content-read", daemon=True).start()
    try:
        data, exc = result.get(timeout=timeout)
    except queue.Empty:
        raise UriRefused(f"content_uri read took longer than {timeout:g} s") from None
    if exc is not None:
        raise exc
    if len(data) > max_bytes:
        raise UriRefused(f"content exceeds the limit of {max_bytes} bytes")
    if not data:
        raise UriRefused("content is empty")
    return data


class ResolveContentFn(beam.DoFn):
    def __init__(self, limits: Limits, content: Optional[ContentSettings] = None, extra_prefixes: Sequence[str] = ()):
        self._limits = limits
        self._content = content or ContentSettings()
        self._prefixes = tuple(self._content.allowed_uri_prefixes) + tuple(extra_prefixes)
        self._policy: Optional[UriPolicy] = None

    def setup(self):
        self._policy = UriPolicy(self._prefixes)

    @guarded("content")
    def process(self, event):
        if event.content is not None or event.content_uri is None:
            yield event
            return
        if self._policy is None:
            self.setup()
        try:
            data = read_uri(event.content_uri, self._limits.max_content_bytes, self._policy,
                            self._content.read_timeout_seconds)
        except UriRefused as exc:  # the rule, never the URI
            reason = str(exc)
        except Exception as exc:  # any filesystem error: missing object, permission...
            reason = f"content_uri unreadable ({type(exc).__name__})"
        else:
            yield dataclasses.replace(event, content=data)
            return
        counter("dead_lettered").inc()
        yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter("content", reason, event.event_id))


class ResolveContent(beam.PTransform):
    """``content``: the allowed prefixes and the read time limit; ``media_glob``: the pipeline's
    own ``--input_media_glob``, whose folder is allowed too (the operator chose it)."""

    def __init__(self, limits: Limits, content: Optional[ContentSettings] = None, media_glob: Optional[str] = None):
        super().__init__()
        self._limits = limits
        self._content = content
        self._extra = (glob_prefix(media_glob),) if media_glob else ()

    def expand(self, events):
        fn = ResolveContentFn(self._limits, self._content, self._extra)
        return events | "Fetch" >> beam.ParDo(fn).with_outputs(DEAD_LETTER, main="events")
