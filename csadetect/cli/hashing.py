"""``csadetect hash PATH...``: every signal type computed from media files, one JSON line each.

The fields come from the signal registry (:func:`csadetect.signals.describe`): PDQ with its
quality, MD5 and SHA-256 for images; vPDQ frames and the file digests for videos. A directory is
walked like ``match`` walks it (recursive, sorted, image and video extensions); ``-`` reads paths
(files or directories) from stdin, one per line. ``--config`` is accepted before or after the
command. A file that cannot be hashed, or a directory without image or video files, gives
``error: PATH: reason`` on stderr and exit code 1 at the end.
"""
from __future__ import annotations

from csadetect.cli.indicators import add_config_argument, media_files, stdin_lines
from csadetect.cli.output import emit, error
from csadetect.config.settings import load_settings
from csadetect.indicators.rows import IndicatorError
from csadetect.media.hashing import MediaError, hash_file
from csadetect.signals import describe, digests


def _paths(paths, failed: list):
    """The files to hash: each PATH (directories expanded), ``-`` replaced by stdin's lines. A
    directory without media files gives ``error: PATH: ...`` and is appended to ``failed``."""
    for path in paths:
        for item in (line for _, line in stdin_lines()) if path == "-" else [path]:
            try:
                yield from media_files([item])
            except IndicatorError as exc:
                error(str(exc))
                failed.append(item)


def _cmd_hash(args) -> int:
    settings = load_settings(getattr(args, "config", None))
    if args.paths.count("-") > 1:
        error("stdin (-) can be read once")
        return 1
    unlisted: list[str] = []
    failed = 0
    for path in _paths(args.paths, unlisted):
        try:
            hashes = hash_file(path, max_pixels=settings.limits.max_pixels, seconds_per_hash=args.seconds_per_hash,
                               digests=digests(), video_bars=settings.match.video_bars)
        except MediaError as exc:
            failed += 1
            error(f"{path}: {exc}")
            continue
        emit({"path": path, **describe(hashes)})
    return 1 if failed or unlisted else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("hash", help="PDQ/MD5/SHA-256 (vPDQ for video) of files, one JSON line each")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files or directories (recursive); - reads paths from stdin, one per line")
    p.add_argument("--seconds-per-hash", type=float, default=1.0, help="vPDQ sampling (0 = every frame)")
    add_config_argument(p)
    p.set_defaults(func=_cmd_hash)
