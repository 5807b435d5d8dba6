"""``csadetect indicators ...`` and the parser of ``csadetect match`` (DESIGN.md §11; hash-list formats:
docs/indicators.md; the command itself is :mod:`csadetect.cli.matching`).

:func:`register` adds the commands to an argparse subparsers object; each handler is
``(args) -> exit code``. JSON goes to stdout, human messages to stderr; a bad input gives one
line ``error: ...`` on stderr and exit code 1. ``indicators import`` and ``match --hashes`` read
other tools' hash lists through :mod:`csadetect.indicators.formats` and report refused rows with
their line numbers; ``indicators export`` writes a snapshot back to those formats. The helpers
here (media files, stdin lines, settings, the embedding model) serve ``match`` and ``hash`` too.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Iterator, Optional, Sequence

from csadetect.cli.output import Count, Progress, emit, handled, say
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core import fs
from csadetect.core.keys import SigningError, generate_keypair, key_id, load_private_key
from csadetect.indicators import formats
from csadetect.indicators.rows import FORMATS, IndicatorError, check_output, duplicate_error, from_media, write_csv
from csadetect.indicators.mapped import has_index_files, map_version
from csadetect.indicators.input_table import input_table
from csadetect.indicators.snapshot import (DuplicateIdError, SnapshotError, build_snapshot, check_head, compact,
                                           diff_batches, info, resolved_batches, verify_snapshot, version_dir)
from csadetect.media.decoders import IMAGE_EXTENSIONS
from csadetect.media.hashing import VIDEO_EXTENSIONS, MediaError
from csadetect.models import ModelError
from csadetect.signals import names

_handled = handled(lambda: (IndicatorError, SnapshotError, SigningError, MediaError, ConfigError))


def media_files(paths: Sequence[str]) -> Iterator[str]:
    """Files given, with directories expanded (sorted, recursive, image/video extensions only). A
    directory holding none raises IndicatorError (a wrong or empty mount is not "nothing matched")."""
    wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    for path in paths:
        if os.path.isdir(path):
            files = fs.files_under(path, wanted)
            first = next(files, None)
            if first is None:
                raise IndicatorError(f"{path}: no image or video files in this directory")
            yield first
            yield from files
        else:
            yield path


def stdin_lines(stream=None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of stdin (``-`` on the command line)."""
    for number, line in enumerate(stream or sys.stdin, 1):
        if line.strip():
            yield number, line.strip()


def _settings(args):
    return load_settings(getattr(args, "config", None))


def add_config_argument(parser) -> None:
    """``--config`` after the command too (``csadetect match --config FILE``); given before the
    command it is the top-level option, which this one does not reset (SUPPRESS)."""
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.yaml",
                        help="YAML config merged over the defaults (as csadetect --config)")


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
    check_output(args.out, args.force)  # before any hashing: an earlier CSV is kept, a bad path fails now
    paths = list(media_files(args.paths))
    embedder = _embedder(settings, not args.no_embedding)
    if embedder is not None:
        say(f"embedding model {embedder.version}: images also get embedding rows (the image, a 5% centre crop, ±3° rotations)")
    bar = Progress(len(paths), "hashing")
    rows = from_media(paths, settings.match, category=args.category, errors=errors, warnings=warnings,
                      embedder=embedder, progress=bar.update)
    bar.close()
    for line in warnings:
        say(f"warning: {line}")
    for line in errors:
        say(f"error: {line}")
    if not rows:  # no file gave a row: no CSV of a header alone, which the next run would need --force to replace
        say(f"nothing written to {args.out}: none of {len(paths)} files could be hashed")
        emit({"out": None, "files": len(paths), "failed": len(errors), "rows": 0})
        return 1
    write_csv(rows, args.out, overwrite=args.force)
    say(f"wrote {len(rows)} indicators from {len(paths) - len(errors)} of {len(paths)} files to {args.out}")
    emit({"out": args.out, "files": len(paths), "failed": len(errors), "rows": len(rows)})
    return 1 if errors or not paths else 0


@_handled
def cmd_build(args) -> int:
    if args.input is None and not (args.base and args.disable):
        raise IndicatorError("--input is required (only a delta with --base and --disable may omit it)")
    key = load_private_key(args.key)  # fail fast, before reading a large input
    rows = input_table(args.input, args.format, args.kind, Count(f"reading {args.input}")) if args.input else []
    try:
        manifest = build_snapshot(rows, args.out, key, base=args.base, disable_ids=args.disable or (),
                                  progress=Count(f"writing {args.out}"))
    except DuplicateIdError as exc:  # the read keeps no set of ids: its lines are found again
        raise duplicate_error(args.input, args.format, args.kind, exc.indicator_id) from None
    kind = f"delta on version {manifest['parent']}" if manifest["parent"] else "full snapshot"
    say(f"built version {manifest['version']} ({kind}) in {args.out}: {manifest['counts']['rows']} rows")
    emit({k: manifest[k] for k in ("version", "type", "parent", "created_at", "key_id", "counts", "totals")})
    return 0


@_handled
def cmd_compact(args) -> int:
    key = load_private_key(args.key)
    manifest = compact(args.db_dir, key, args.version)
    say(f"compacted {args.db_dir} into version {manifest['version']} (full snapshot of "
        f"{manifest['counts']['rows']} rows, index files ready to map)")
    emit({k: manifest[k] for k in ("version", "type", "parent", "created_at", "key_id", "counts")})
    return 0


@_handled
def cmd_verify(args) -> int:
    """The database first (a rollback: ``CURRENT`` missing or below the highest signed version, or
    that version below ``--min-version``), then the chain of ``--version`` (default: the highest)."""
    try:
        found = check_head(args.db_dir, args.public_key, args.min_version)
        # as a worker loads it, without holding it (verify_snapshot reads the base a batch at a time)
        version, chain, totals = verify_snapshot(args.db_dir, args.public_key,
                                                 found.latest if args.version is None else args.version)
        base = chain[0]
        if has_index_files(base) and not fs.is_url(args.db_dir):  # the files workers map: their checksums too
            map_version(version_dir(args.db_dir, base["version"]), base)
    except SnapshotError as exc:
        emit({"ok": False, "db_dir": args.db_dir, "error": str(exc)})
        raise
    say(f"version {version} of {args.db_dir} verifies ({len(chain)} version(s) checked)")
    emit({
        "ok": True,
        "db_dir": args.db_dir,
        "current": found.current,
        "latest_signed": found.latest,
        "version": version,
        "chain": [m["version"] for m in chain],
        "totals": totals,
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
        sides = [(db, _version_arg(va)), (db, _version_arg(vb))]
    elif len(args.targets) == 2:
        sides = [(args.targets[0], None), (args.targets[1], None)]
    else:
        raise IndicatorError("diff takes DBDIR VERSION_A VERSION_B, or DBDIR_A DBDIR_B")
    # each version read and verified a batch at a time, never whole (snapshot_diff)
    (va, a), (vb, b) = (resolved_batches(where, args.public_key, version) for where, version in sides)
    result = diff_batches(a(), b(), va, vb)
    say(
        f"{len(result['added'])} added, {len(result['disabled'])} disabled, {len(result['changed'])} changed, "
        f"{len(result['enabled'])} enabled, {len(result['removed'])} removed"
    )
    emit(result)
    return 0


# ------------------------------------------------------------------------------- import / export


@_handled
def cmd_import(args) -> int:
    settings = _settings(args)
    if not args.out and not args.csv:
        raise IndicatorError("import writes a signed snapshot (--out DBDIR --key PRIVATE.pem) or a CSV (--csv FILE)")
    if args.out and not args.key:
        raise IndicatorError("--out needs --key PRIVATE.pem (the snapshot is signed)")
    key = load_private_key(args.key) if args.out else None  # fail fast, before reading a large input
    if args.csv:
        check_output(args.csv, args.force)
    columns = formats.parse_columns(args.columns)
    imported = formats.read(args.input, args.format, args.kind, columns, category=args.category,
                            source=args.source, settings=settings.match, min_quality=args.min_quality)
    for line in imported.summary(args.show_refused):
        say(line)
    if imported.refused and not args.skip_refused:
        raise IndicatorError(f"{len(imported.refused)} refused rows: nothing imported (fix them, or pass "
                             f"--skip-refused to import the {imported.table.num_rows} good rows)")
    if not imported.table.num_rows:
        raise IndicatorError(f"{args.input}: no rows to import")
    result = imported.counts()
    if args.csv:
        formats.export_file(lambda: iter([imported.table]), "csadetect", args.csv, overwrite=args.force)
        say(f"wrote {imported.table.num_rows} indicators to {args.csv}")
        result["csv"] = args.csv
    if args.out:
        manifest = build_snapshot(imported.table, args.out, key, base=args.base)
        kind = f"delta on version {manifest['parent']}" if manifest["parent"] else "full snapshot"
        say(f"built version {manifest['version']} ({kind}) in {args.out}: {manifest['counts']['rows']} rows")
        result |= {k: manifest[k] for k in ("version", "type", "parent", "counts")}
    emit(result)
    return 0


@_handled
def cmd_export(args) -> int:
    check_output(args.out, args.force)  # before loading and verifying the snapshot
    version, batches = resolved_batches(args.db_dir, args.public_key, args.version)  # a batch at a time
    result = formats.export_file(batches, args.format, args.out, args.kind, args.include_disabled, overwrite=args.force)
    for kind, count in result["skipped"].items():
        say(f"skipped {count} {kind} rows: the {args.format} format cannot carry them")
    say(f"wrote {result['written']} indicators of version {version} to {args.out} ({args.format})")
    emit({"out": args.out, "format": args.format, "version": version} | result)
    return 0


# ------------------------------------------------------------------------------- parser


def _quality(text: str) -> int:
    """A PDQ quality for ``--min-quality``: a whole number from 0 to 100 (argparse names the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100 (PDQ quality), not {value}")
    return value


def register(subparsers) -> None:
    """Add ``indicators {keygen,from-media,build,compact,verify,info,diff,import,export}``."""
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
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    p.set_defaults(func=cmd_from_media)

    p = sub.add_parser("build", help="write a signed snapshot (or a delta with --base)")
    p.add_argument("--input", metavar="FILE", help="indicators: .csv, .jsonl/.json, or .txt (one hash per line)")
    p.add_argument("--format", choices=FORMATS, help="input format (default: from the extension)")
    p.add_argument("--kind", choices=names(), help="the kind of the values of a hash list (.txt: one per line); "
                   "needed when they could be several (64 hex digits: pdq or sha256), unless a header line names it")
    p.add_argument("--key", required=True, metavar="PRIVATE.pem")
    p.add_argument("--out", required=True, metavar="DBDIR")
    p.add_argument("--base", metavar="latest|N", help="write a delta against this version")
    p.add_argument("--disable", nargs="+", action="extend", metavar="ID", help="tombstone these indicator ids")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("compact", help="write a new full version of the resolved rows of the latest (or --version), "
                                       "so workers map one base instead of applying a chain of deltas")
    p.add_argument("--key", required=True, metavar="PRIVATE.pem")
    p.add_argument("--version", type=int, help="the version to compact (default: the highest signed one)")
    p.add_argument("db_dir", metavar="DBDIR")
    p.set_defaults(func=cmd_compact)

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

    p = sub.add_parser("import", help="read a hash list (threatexchange/HMA exports, plain lists, mapped CSV) "
                                      "into a signed snapshot or a CSV, reporting refused rows by line")
    p.add_argument("input", metavar="FILE")
    p.add_argument("--format", choices=formats.IMPORT_FORMATS + ("csv", "hashes"),
                   help="default: from the name (.txt list, .te hma, .jsonl) and a CSV's header")
    p.add_argument("--kind", help="the kind of a list's values (a kind or an alias such as HASH_PDQ, video_md5); "
                   "needed for 64 hex digits (pdq or sha256) unless a header line names it")
    p.add_argument("--columns", metavar="ROLE=COLUMN,...",
                   help="a CSV's columns: hash= (required), kind=, id=, note=, category=, source=, quality=")
    p.add_argument("--category", help="category of rows that name none (default: unspecified)")
    p.add_argument("--source", help="source of rows that name none (default: the threatexchange collab, else eu-centre)")
    p.add_argument("--min-quality", type=_quality, metavar="Q",
                   help="refuse rows whose quality column is below Q (default: match.quality_gate)")
    p.add_argument("--skip-refused", action="store_true",
                   help="import the good rows even when some are refused (default: any refused row fails the import)")
    p.add_argument("--show-refused", type=int, default=10, metavar="K", help="reasons shown (default 10)")
    p.add_argument("--out", metavar="DBDIR", help="write a signed snapshot here (with --key)")
    p.add_argument("--key", metavar="PRIVATE.pem")
    p.add_argument("--base", metavar="latest|N", help="write a delta against this version")
    p.add_argument("--csv", metavar="FILE.csv", help="write the rows as csadetect CSV (for indicators build)")
    p.add_argument("--force", action="store_true", help="replace an existing --csv file")
    add_config_argument(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a verified snapshot as csadetect CSV, threatexchange CSV or a plain list")
    p.add_argument("db_dir", metavar="DBDIR")
    p.add_argument("--public-key", required=True, metavar="PUBLIC.pem")
    p.add_argument("--format", choices=formats.EXPORT_FORMATS, default="csadetect")
    p.add_argument("--kind", help="only this kind (a list holds one kind)")
    p.add_argument("--version", type=int, help="default: the highest signed version")
    p.add_argument("--include-disabled", action="store_true", help="also tombstoned rows (csadetect format)")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace an existing FILE")
    p.set_defaults(func=cmd_export)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stand-alone entry point for ``indicators`` and ``match`` (tests; ``csadetect`` normally calls
    each module's ``register``)."""
    from csadetect.cli import matching  # here: matching imports this module's helpers

    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None, help="YAML config merged over the defaults")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    register(subparsers)
    matching.register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
