"""`csadetect` command line (DESIGN §11).

JSON Lines on stdout; human messages and progress on stderr; a bad input gives a one-line reason
and a non-zero exit code."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys

from csadetect.cli import (complaints, console, feedback, hashing, indicators, models, reports, retention, review,
                           transparency, tune)
from csadetect.cli.output import error
from csadetect.config.settings import ConfigError
from csadetect.indicators.snapshot import SnapshotError

# One module per command group, each with ``register(subparsers)``; `run` and `demo` are below.
COMMAND_GROUPS = (hashing, indicators, models, tune, reports, review, retention, complaints, transparency, feedback,
                  console)


def version() -> str:
    """The installed distribution's version (``setup.py``), or ``unknown`` when it is not installed."""
    try:
        return importlib.metadata.version("csadetect")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _with_config(args) -> list[str]:
    return (["--config", args.config] if args.config else []) + args.extra


def _cmd_run(args) -> int:
    from csadetect.pipelines.detect import main as detect_main  # lazy: Beam and the models, only for `run`

    return detect_main(_with_config(args))


def _cmd_demo(args) -> int:
    from csadetect.demo import main as demo_main  # lazy: Beam and the models, only for `demo`

    return demo_main(_with_config(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csadetect", description="Privacy-preserving CSA detection pipeline")
    parser.add_argument("--config", default=None, help="YAML config merged over the defaults")
    parser.add_argument("--version", action="version", version=f"csadetect {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="run the pipeline on the embedded benign demo data", add_help=False)
    p.set_defaults(func=_cmd_demo, passthrough=True)

    p = sub.add_parser("run", help="run the detection pipeline (Beam pipeline options pass through)", add_help=False)
    p.set_defaults(func=_cmd_run, passthrough=True)

    for group in COMMAND_GROUPS:
        group.register(sub)
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
        if isinstance(exc, (ConfigError, SnapshotError)):
            error(str(exc))
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
