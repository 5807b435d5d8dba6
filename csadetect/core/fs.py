"""Files on any Beam filesystem: the one place the plain-Python core reaches Beam's ``FileSystems``.

Snapshots, keys, config, models, stats and stores may live on a local disk or on ``gs://``,
``s3://``, ``hdfs://`` (any scheme registered with ``apache_beam.io.filesystems.FileSystems``).
Code below ``csadetect.transforms`` goes through these helpers, so it never imports Beam's
pipeline API (a contract in ``.importlinter``), and Beam's I/O layer is imported only when a path
actually needs it.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import IO, Iterator, Optional

_URL = re.compile(r"^[a-zA-Z][-a-zA-Z0-9+.]*://")  # FileSystems.URI_SCHEMA_PATTERN, without importing Beam
FORCE_BEAM = False  # tests flip this to send local paths through Beam's FileSystems too


def read_blocks(fh) -> Iterator[bytes]:
    """An open binary file read to its end in 16 MiB blocks (for hashing or copying without holding it)."""
    return iter(lambda: fh.read(1 << 24), b"")


def file_digests(path, algorithms=("sha256",), drop_cache: bool = False) -> "dict[str, str]":
    """Hex digests of a local file, one per ``hashlib`` algorithm, read once in 16 MiB blocks (nothing
    of it is kept). ``drop_cache``: then ask the kernel to drop the pages this read cached (pages
    other processes map stay)."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        for block in read_blocks(fh):
            for hasher in hashers.values():
                hasher.update(block)
        if drop_cache and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def sha256_file(path, drop_cache: bool = False) -> str:
    """The SHA-256 of a local file (``file_digests``)."""
    return file_digests(path, ("sha256",), drop_cache)["sha256"]


def is_url(path) -> bool:
    """A Beam filesystem URL (``gs://``, ``s3://``, ``hdfs://``, ...) rather than a local path."""
    return isinstance(path, (str, os.PathLike)) and bool(_URL.match(os.fspath(path).strip()))


def via_beam(path) -> bool:
    """Whether ``path`` is read and written through Beam's FileSystems."""
    return FORCE_BEAM or is_url(path)


def filesystems():
    """Beam's ``FileSystems`` class (imported on first use: it loads Beam's I/O layer)."""
    from apache_beam.io.filesystems import FileSystems  # lazy: Beam's I/O layer, only for URLs

    return FileSystems


def _uncompressed():
    from apache_beam.io.filesystem import CompressionTypes  # lazy: as above

    return CompressionTypes.UNCOMPRESSED


def join(base: str, *parts: str) -> str:
    return filesystems().join(base, *parts) if via_beam(base) else os.path.join(base, *parts)


def exists(path: str) -> bool:
    return filesystems().exists(path) if via_beam(path) else os.path.exists(path)


def blocking_file(directory: Optional[str]) -> Optional[str]:
    """What stops the local output directory ``directory`` from being made or written: itself or the
    nearest existing path above it, when that is not a directory (None: fine, remote or unset)."""
    if not directory or is_url(directory):
        return None
    path = os.path.abspath(directory)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else path


def files_under(directory: str, extensions) -> Iterator[str]:
    """The local files below ``directory`` whose extension (any case, with its dot) is in
    ``extensions``: recursive, in sorted order, hidden files and folders left out."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                yield os.path.join(root, name)


def replace_whole(path: str, data: bytes, mode: Optional[int] = None) -> None:
    """Write ``data`` to the local file ``path`` so that a reader sees the old file or the new one,
    never part of one: a temporary file beside it, synced, then renamed over it. ``mode``: the new
    file's permissions whatever the umask; None keeps those of the file it replaces (a new file gets
    the umask's). A failure leaves ``path`` as it was and no temporary file."""
    tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    if mode is None and os.path.exists(path):
        mode = os.stat(path).st_mode & 0o777
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def open_read(path: str) -> IO[bytes]:
    """A binary reader, never decompressed by file extension."""
    if via_beam(path):
        return filesystems().open(path, compression_type=_uncompressed())
    return open(path, "rb")


def open_write(path: str) -> IO[bytes]:
    """A binary writer (parent directories made for local paths), never compressed by extension."""
    if via_beam(path):
        return filesystems().create(path, compression_type=_uncompressed())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "wb")


def read_bytes(path: str) -> bytes:
    """The whole file; a missing one raises ``FileNotFoundError`` on every filesystem."""
    if via_beam(path) and not exists(path):
        raise FileNotFoundError(path)
    with open_read(path) as fh:
        return fh.read()


def read_text(path: str, encoding: str = "utf-8") -> str:
    return read_bytes(os.fspath(path)).decode(encoding)


def match(pattern: str) -> Iterator:
    """Metadata (``.path``, ``.size_in_bytes``, ``.last_updated_in_seconds``) of the files matching
    a glob, on any filesystem (local paths too, through Beam's local filesystem)."""
    for result in filesystems().match([pattern]):
        yield from result.metadata_list


def local_copy(sources: "dict[str, str]", cache_dir: str, key: str, check=None) -> str:
    """A local directory ``cache_dir/key`` holding ``sources`` (relative name, ``/``-separated ->
    a path or URL on any filesystem), copied once per machine: the first process streams each file
    into a staging directory (``check(name, sha256_hex)`` may raise to refuse one) and renames the
    directory into place in one step; the others wait on a lock file and reuse it, so no process
    ever reads a half-copied directory and the copy is made once, not once per process."""
    import fcntl
    import hashlib
    import shutil
    import tempfile

    final = os.path.join(cache_dir, key)
    if os.path.isdir(final):
        return final
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.isdir(final):
                return final
            staging = tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir)
            try:
                for name, source in sorted(sources.items()):
                    dest = os.path.join(staging, *name.split("/"))
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    digest = hashlib.sha256()
                    with open_read(source) as src, open(dest, "wb") as out:
                        for block in read_blocks(src):
                            digest.update(block)
                            out.write(block)
                    if check is not None:
                        check(name, digest.hexdigest())
                os.rename(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final
