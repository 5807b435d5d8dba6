"""`csadetect` command line (DESIGN §11).

JSON Lines on stdout; human messages and progress on stderr; a bad input gives a one-line reason
and a non-zero exit code."""
from __future__ import annotations

import argparse
import json
import os
import sys


def _cmd_hash(args) -> int:
    from csadetect.media.hashing import MediaError, hash_file
    from csadetect.config.settings import load_settings
    from csadetect.signals import describe, digests

    settings = load_settings(args.config)
    failed = 0
    for path in args.paths:
        try:
            hashes = hash_file(path, max_pixels=settings.limits.max_pixels, seconds_per_hash=args.seconds_per_hash,
                               digests=digests())
        except MediaError as exc:
            failed += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
            continue
        print(json.dumps({"path": path, **describe(hashes)}), flush=True)
    return 1 if failed else 0


def _with_config(args) -> list[str]:
    return (["--config", args.config] if args.config else []) + args.extra


def _cmd_run(args) -> int:
    from csadetect.pipelines.detect import main as detect_main

    return detect_main(_with_config(args))


def _cmd_demo(args) -> int:
    from csadetect.demo import main as demo_main

    return demo_main(_with_config(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csadetect", description="Privacy-preserving CSA detection pipeline")
    parser.add_argument("--config", default=None, help="YAML config merged over the defaults")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="run the pipeline on the embedded benign demo data", add_help=False)
    p.set_defaults(func=_cmd_demo, passthrough=True)

    p = sub.add_parser("run", help="run the detection pipeline (Beam pipeline options pass through)", add_help=False)
    p.set_defaults(func=_cmd_run, passthrough=True)

    p = sub.add_parser("hash", help="PDQ/MD5/SHA-256 (vPDQ for video) of files, one JSON line each")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--seconds-per-hash", type=float, default=1.0, help="vPDQ sampling (0 = every frame)")
    p.set_defaults(func=_cmd_hash)

    from csadetect.cli.console import register as register_console
    from csadetect.cli.reports import register as register_reports
    from csadetect.cli.complaints import register as register_complaints
    from csadetect.cli.retention import register as register_retention
    from csadetect.cli.review import register as register_review
    from csadetect.cli.transparency import register as register_transparency
    from csadetect.cli.tune import register as register_tune
    from csadetect.cli.indicators import register as register_indicators
    from csadetect.cli.feedback import register as register_feedback
    from csadetect.cli.models import register as register_models

    register_indicators(sub)
    register_models(sub)
    register_tune(sub)
    register_reports(sub)
    register_review(sub)
    register_retention(sub)
    register_complaints(sub)
    register_transparency(sub)
    register_feedback(sub)
    register_console(sub)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra  # `run` and `demo` pass their options on (Beam pipeline options included)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one line, no traceback, no content
        from csadetect.config.settings import ConfigError
        from csadetect.indicators.snapshot import SnapshotError

        if isinstance(exc, (ConfigError, SnapshotError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
