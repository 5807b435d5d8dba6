"""``csadetect indicators ...`` and ``csadetect match`` (DESIGN.md §11).

:func:`register` adds the commands to an argparse subparsers object; each handler is
``(args) -> exit code``. JSON goes to stdout, human messages to stderr; a bad input gives one
line ``error: ...`` on stderr and exit code 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Iterator, Optional, Sequence

from tqdm import tqdm

from csadetect.cli.output import emit, handled, say
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core.keys import SigningError, generate_keypair, key_id, load_private_key
from csadetect.indicators.index import load_index
from csadetect.indicators.rows import FORMATS, IndicatorError, from_media, read_indicators, write_csv
from csadetect.indicators.snapshot import SnapshotError, build_snapshot, check_head, diff, head, info, load_snapshot
from csadetect.media.hashing import VIDEO_EXTENSIONS, MediaError, VideoHashes, hash_file
from csadetect.media.preprocess import views as preprocess_views
from csadetect.models import ModelError
from csadetect.signals import digests, names

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


_handled = handled(lambda: (IndicatorError, SnapshotError, SigningError, MediaError, ConfigError))


def media_files(paths: Sequence[str]) -> Iterator[str]:
    """Files given, with directories expanded (sorted, recursive, image/video extensions only)."""
    wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in wanted:
                        yield os.path.join(root, name)
        else:
            yield path


def _settings(args):
    return load_settings(getattr(args, "config", None))


# ------------------------------------------------------------------------------- handlers


@_handled
def cmd_keygen(args) -> int:
    private_path, public_path = generate_keypair(args.out, overwrite=args.force)
    say(f"wrote {private_path} (keep it secret) and {public_path}")
    emit({"private_key": private_path, "public_key": public_path, "key_id": key_id(public_path)})
    return 0


def _embedder(settings, enabled: bool = True):
    """The configured embedding model (None when embedding is off). Raises ConfigError."""
    if not (enabled and settings.embedding.enabled):
        return None
    from csadetect.models.embedding import EmbeddingModel  # lazy: the model loader imports Beam

    try:
        return EmbeddingModel.load(settings.embedding.model)
    except ModelError as exc:
        raise ConfigError(f"{exc} (set embedding.enabled: false, or pass --no-embedding)") from None


@_handled
def cmd_from_media(args) -> int:
    errors: list[str] = []
    warnings: list[str] = []
    settings = _settings(args)
    paths = list(media_files(args.paths))
    embedder = _embedder(settings, not args.no_embedding)
    if embedder is not None:
        say(f"embedding model {embedder.version}: images also get embedding rows (the image, a 5% centre crop, ±3° rotations)")
    bar = tqdm(total=len(paths), unit="file", disable=len(paths) < 50 or None, file=sys.stderr)
    rows = from_media(paths, settings.match, category=args.category, errors=errors, warnings=warnings,
                      embedder=embedder, progress=lambda: bar.update(1))
    bar.close()
    for line in warnings:
        say(f"warning: {line}")
    for line in errors:
        say(f"error: {line}")
    write_csv(rows, args.out)
    say(f"wrote {len(rows)} indicators from {len(paths) - len(errors)} of {len(paths)} files to {args.out}")
    emit({"out": args.out, "files": len(paths), "failed": len(errors), "rows": len(rows)})
    return 1 if errors or not paths else 0


@_handled
def cmd_build(args) -> int:
    if args.input is None and not (args.base and args.disable):
        raise IndicatorError("--input is required (only a delta with --base and --disable may omit it)")
    key = load_private_key(args.key)  # fail fast, before reading a large input
    rows = read_indicators(args.input, args.format, args.kind) if args.input else []
    manifest = build_snapshot(rows, args.out, key, base=args.base, disable_ids=args.disable or ())
    kind = f"delta on version {manifest['parent']}" if manifest["parent"] else "full snapshot"
    say(f"built version {manifest['version']} ({kind}) in {args.out}: {manifest['counts']['rows']} rows")
    emit({k: manifest[k] for k in ("version", "type", "parent", "created_at", "key_id", "counts", "totals")})
    return 0


@_handled
def cmd_verify(args) -> int:
    """The database first (a rollback: ``CURRENT`` missing or below the highest signed version, or
    that version below ``--min-version``), then the chain of ``--version`` (default: the highest)."""
    try:
        found = check_head(args.db_dir, args.public_key, args.min_version)
        snap = load_snapshot(args.db_dir, args.public_key, args.version or found.latest)
    except SnapshotError as exc:
        emit({"ok": False, "db_dir": args.db_dir, "error": str(exc)})
        raise
    say(f"version {snap.version} of {args.db_dir} verifies ({len(snap.chain)} version(s) checked)")
    emit({
        "ok": True,
        "db_dir": args.db_dir,
        "current": found.current,
        "latest_signed": found.latest,
        "version": snap.version,
        "chain": [m["version"] for m in snap.chain],
        "totals": snap.counts(),
    })
    return 0


@_handled
def cmd_info(args) -> int:
    result = info(args.db_dir, args.public_key, args.version)
    if not result["verified"]:
        say("note: not verified (pass --public-key to verify signatures and checksums)")
    emit(result)
    return 0


def _version_arg(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise IndicatorError(f"not a version number: {text!r}")
    return int(text)


@_handled
def cmd_diff(args) -> int:
    if len(args.targets) == 3:
        db, va, vb = args.targets
        a = load_snapshot(db, args.public_key, _version_arg(va))
        b = load_snapshot(db, args.public_key, _version_arg(vb))
    elif len(args.targets) == 2:
        a = load_snapshot(args.targets[0], args.public_key)
        b = load_snapshot(args.targets[1], args.public_key)
    else:
        raise IndicatorError("diff takes DBDIR VERSION_A VERSION_B, or DBDIR_A DBDIR_B")
    result = diff(a, b)
    say(
        f"{len(result['added'])} added, {len(result['disabled'])} disabled, {len(result['changed'])} changed, "
        f"{len(result['enabled'])} enabled, {len(result['removed'])} removed"
    )
    emit(result)
    return 0


def _hash_and_match(path: str, index, settings, embedder=None, spec=None) -> list:
    hashes, pictures = hash_file(path, max_pixels=settings.limits.max_pixels,
                                 seconds_per_hash=settings.match.video_seconds_per_hash,
                                 preprocess=preprocess_views if settings.match.preprocess else None,
                                 with_views=True, digests=digests())
    if isinstance(hashes, VideoHashes):
        return index.match_video(hashes)
    if embedder is None:
        return index.match_image(hashes)
    from csadetect.models.embedding import model_inputs  # lazy: the model loader imports Beam

    _, batch = model_inputs(pictures, embedder.input_size, flip=settings.embedding.flip)
    vectors = embedder.embed_arrays(batch)
    return index.match_image(hashes, vectors, spec.version, spec.threshold)


@_handled
def cmd_match(args) -> int:
    settings = _settings(args)
    db_dir = args.indicators or settings.indicators.path
    public_key = args.public_key or settings.indicators.public_key
    found = head(db_dir, public_key)
    index = load_index(db_dir, public_key, settings.match, version=found.latest,
                       min_version=settings.indicators.min_version)
    say(f"indicator snapshot version {index.version} ({len(index)} active indicators)")
    if found.problem():
        say(f"warning: {found.problem()} (matching against version {found.latest})")
    embedder = _embedder(settings, not args.no_embedding)
    spec = None
    if embedder is not None:
        from csadetect.models.embedding import EmbeddingSpec  # lazy: the model loader imports Beam

        spec = EmbeddingSpec.resolve(settings.embedding)
        say(f"embedding model {spec.version}: near-duplicates at cosine similarity >= {spec.threshold:.4f}")
    failed = 0
    for path in media_files(args.paths):
        try:
            matches = _hash_and_match(path, index, settings, embedder, spec)
        except (MediaError, OSError) as exc:
            failed += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            emit({"path": path, "error": reason})
            continue
        emit({"path": path, "matched": bool(matches), "matches": [m.to_json() for m in matches]})
    return 1 if failed else 0


# ------------------------------------------------------------------------------- parser


def register(subparsers) -> None:
    """Add ``indicators {keygen,from-media,build,verify,info,diff}`` and ``match``."""
    ind = subparsers.add_parser("indicators", help="build, sign, verify and inspect indicator snapshots")
    sub = ind.add_subparsers(dest="indicators_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("keygen", help="create an Ed25519 key pair (private.pem, public.pem)")
    p.add_argument("--out", required=True, metavar="KEYDIR")
    p.add_argument("--force", action="store_true", help="replace an existing private key")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("from-media", help="indicator rows (CSV) from image and video files")
    p.add_argument("--out", required=True, metavar="FILE.csv")
    p.add_argument("--category", default="unspecified")
    p.add_argument("--no-embedding", action="store_true",
                   help="no embedding rows even when an embedding model is configured (embedding.enabled)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    p.set_defaults(func=cmd_from_media)

    p = sub.add_parser("build", help="write a signed snapshot (or a delta with --base)")
    p.add_argument("--input", metavar="FILE", help="indicators: .csv, .jsonl/.json, or .txt (one hash per line)")
    p.add_argument("--format", choices=FORMATS, help="input format (default: from the extension)")
    p.add_argument("--kind", choices=names(), help="the kind of the values of a hash list (.txt: one per line; default pdq)")
    p.add_argument("--key", required=True, metavar="PRIVATE.pem")
    p.add_argument("--out", required=True, metavar="DBDIR")
    p.add_argument("--base", metavar="latest|N", help="write a delta against this version")
    p.add_argument("--disable", nargs="+", action="extend", metavar="ID", help="tombstone these indicator ids")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("verify", help="check signatures and checksums of a version and its chain, and that "
                                      "CURRENT is not rolled back below the highest signed version")
    p.add_argument("--public-key", required=True, metavar="PUBLIC.pem")
    p.add_argument("--version", type=int, help="the version whose chain to check (default: the highest signed one)")
    p.add_argument("--min-version", type=int, metavar="N", help="also fail when the highest signed version is below N")
    p.add_argument("db_dir", metavar="DBDIR")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("info", help="versions and counts (verified with --public-key)")
    p.add_argument("--public-key", metavar="PUBLIC.pem")
    p.add_argument("--version", type=int)
    p.add_argument("db_dir", metavar="DBDIR")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("diff", help="added/disabled/changed ids between two versions or two databases")
    p.add_argument("--public-key", required=True, metavar="PUBLIC.pem")
    p.add_argument("targets", nargs="+", metavar="DBDIR VERSION_A VERSION_B | DBDIR_A DBDIR_B")
    p.set_defaults(func=cmd_diff)

    p = subparsers.add_parser("match", help="match files against a signed indicator snapshot, one JSON line each")
    p.add_argument("--indicators", metavar="DBDIR", help="snapshot directory (default: indicators.path of the config)")
    p.add_argument("--public-key", metavar="PUBLIC.pem", help="default: indicators.public_key of the config")
    p.add_argument("--no-embedding", action="store_true", help="PDQ, vPDQ and digests only, no embedding near-duplicates")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    p.set_defaults(func=cmd_match)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stand-alone entry point (tests; ``csadetect`` normally calls :func:`register`)."""
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None, help="YAML config merged over the defaults")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
