"""`csadetect` command line (DESIGN §11).

JSON Lines on stdout; human messages and progress on stderr; a bad input gives a one-line reason
and a non-zero exit code.

One command line for every command, in one place (issue 13 §6):

* flags are spelt with dashes (``--public-key``) on csadetect's own commands and with Beam's
  underscores (``--public_key``) on the pipeline commands (``run``, ``feedback``, ``demo``), and
  either spelling works everywhere (:func:`normalise_argv` here; the pipelines' own in
  :func:`csadetect.pipelines.options.launch`);
* a misspelt flag stops the command with one line naming the nearest one (:func:`check_argv`;
  argparse in Python 3.11 does not suggest), exit code 2;
* ``--config FILE`` goes before or after the command (``csadetect --config F review list`` or
  ``csadetect review list --config F``) on every command that reads the settings
  (:data:`SETTINGS_COMMANDS`);
* ``--verbose`` (before or after the command) shows what TensorFlow prints while it starts (CUDA,
  oneDNN); without it the model loader keeps that noise off stderr
  (:func:`csadetect.models.loader.import_tensorflow`).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from typing import Iterator, Optional

from csadetect.cli import (complaints, console, feedback, hashing, indicators, matching, models, publish, pubsub,
                           quarantine, reports, retention, review, transparency, tune)
from csadetect.cli.output import error
from csadetect.config.flags import VERBOSE_ENV, flag_name, respell, suggest
from csadetect.config.settings import ConfigError
from csadetect.indicators.snapshot import SnapshotError

# One module per command group, each with ``register(subparsers)``; `run` and `demo` are below.
COMMAND_GROUPS = (hashing, indicators, matching, quarantine, models, tune, reports, review, retention, complaints,
                  transparency, feedback, console, publish, pubsub)

# The commands that read the settings, as their words on the command line ("*": every command of
# the group). Each takes ``--config FILE`` after its name too (the pass-through pipeline commands
# `run`, `demo` and `feedback` have their own).
SETTINGS_COMMANDS = (
    ("hash",), ("match",), ("indicators", "from-media"),
    ("review", "list"), ("review", "show"), ("review", "decide"), ("review", "expire"),
    ("retention", "*"), ("complaints", "*"), ("console",), ("console", "*"), ("console", "audit", "*"),
    ("transparency",), ("publish",), ("pubsub", "setup"), ("quarantine", "*"),
)


def version() -> str:
    """The installed distribution's version (``setup.py``), or ``unknown`` when it is not installed."""
    try:
        return importlib.metadata.version("csadetect")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _with_config(args) -> list[str]:
    return (["--config", args.config] if args.config is not None else []) + args.extra


def _cmd_run(args) -> int:
    from csadetect.pipelines.detect import main as detect_main  # lazy: Beam and the models, only for `run`

    return detect_main(_with_config(args))


def _cmd_demo(args) -> int:
    from csadetect.demo import main as demo_main  # lazy: Beam and the models, only for `demo`

    return demo_main(_with_config(args))


# -- the parsers --------------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> Optional[argparse._SubParsersAction]:
    for action in parser._actions:  # pylint: disable=protected-access
        if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
            return action
    return None


def _walk(parser: argparse.ArgumentParser, path: tuple = ()) -> Iterator[tuple[tuple, argparse.ArgumentParser]]:
    """Every (sub)command parser with its words, ``()`` for the top-level one."""
    yield path, parser
    sub = _subparsers(parser)
    if sub is not None:
        for name, child in sub.choices.items():
            yield from _walk(child, path + (name,))


def _reads_settings(path: tuple) -> bool:
    return any(len(rule) == len(path) and all(r in ("*", p) for r, p in zip(rule, path)) for rule in SETTINGS_COMMANDS)


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s[2:]: action for action in parser._actions  # pylint: disable=protected-access
            for s in action.option_strings if s.startswith("--")}


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` after the command's name: the same switch as the top-level ``--verbose``."""
    if "verbose" not in _long_options(parser):
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="also show what TensorFlow prints while it starts (CUDA, oneDNN)")


def _add_config(parser: argparse.ArgumentParser) -> None:
    """``--config`` after the command's name: the same setting as the top-level ``--config``."""
    if "config" not in _long_options(parser):
        parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                            help="YAML config merged over the defaults (also: csadetect --config FILE COMMAND)")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors (a missing argument, a bad number, a choice not offered) are one
    line, ``error: PROG: reason; see PROG --help``, exit code 2, instead of the usage block and the
    reason; the subcommands' parsers are of this class too (``add_subparsers`` makes its own kind)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(str(message).split())}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="csadetect", description="Privacy-preserving CSA detection pipeline")
    parser.add_argument("--config", dest="top_config", default=None, metavar="FILE",
                        help="YAML config merged over the defaults (or give it after the command)")
    parser.add_argument("--verbose", action="store_true",
                        help="also show what TensorFlow prints while it starts (CUDA, oneDNN)")
    parser.add_argument("--version", action="version", version=f"csadetect {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="run the pipeline on the embedded benign demo data", add_help=False)
    p.set_defaults(func=_cmd_demo, passthrough=True)

    p = sub.add_parser("run", help="run the detection pipeline (Beam pipeline options pass through)", add_help=False)
    p.set_defaults(func=_cmd_run, passthrough=True)

    for group in COMMAND_GROUPS:
        group.register(sub)
    for path, command in _walk(parser):
        if path and _reads_settings(path):
            _add_config(command)
        if path and not command.get_default("passthrough"):
            _add_verbose(command)
    return parser


# -- flag spelling ------------------------------------------------------------------------------


def _tokens(parser: argparse.ArgumentParser, argv: list[str]) -> Iterator[tuple[int, str, argparse.ArgumentParser]]:
    """``(index, flag name, parser it belongs to)`` for each long flag in ``argv``, following the
    subcommand words; stops at a pass-through command (its flags are Beam's) and at ``--``."""
    current, skip = parser, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--":
            return
        name = flag_name(arg)
        if name is not None:
            yield i, name, current
            action = _long_options(current).get(respell(name, _long_options(current)))
            skip = action is not None and action.nargs != 0 and "=" not in arg
            continue
        if arg.startswith("-"):
            continue
        sub = _subparsers(current)
        if sub is not None and arg in sub.choices:
            current = sub.choices[arg]
            if current.get_default("passthrough"):
                return


def normalise_argv(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with each flag spelt as its command's parser knows it (``--public_key`` ->
    ``--public-key``, and back); a pass-through pipeline command's flags are left to
    :func:`csadetect.pipelines.options.launch`."""
    out = list(argv)
    for i, name, owner in list(_tokens(parser, out)):
        fixed = respell(name, _long_options(owner))
        if fixed != name:
            out[i] = "--" + fixed + out[i][2 + len(name):]
    return out


def check_argv(parser: argparse.ArgumentParser, argv: list[str]) -> Optional[str]:
    """The one-line error for the first flag its command does not know (with the nearest known
    one), or None. A unique prefix of a known flag is accepted, as argparse accepts it."""
    for _, name, owner in _tokens(parser, argv):
        known = _long_options(owner)
        if name in known or len([k for k in known if k.startswith(name)]) == 1:
            continue
        command = " ".join([parser.prog, *_words(parser, owner)])
        return f"unrecognized option --{name} for {command}{suggest(name, known)}; see {command} --help"
    return None


def _words(parser: argparse.ArgumentParser, target: argparse.ArgumentParser) -> tuple:
    for path, command in _walk(parser):
        if command is target:
            return path
    return ()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    argv = normalise_argv(parser, argv)
    problem = check_argv(parser, argv)
    if problem:
        error(problem)
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    after = getattr(args, "config", None)
    if args.top_config and after and after != args.top_config:
        error(f"two config files given (--config {args.top_config} and --config {after}): give one")
        return 2
    args.config = after if after is not None else args.top_config
    if args.config is not None and not args.config.strip():  # `--config=` from an unset variable: not the defaults
        error("the config file path is empty: give --config a YAML file or leave it out")
        return 2
    if getattr(args, "passthrough", False) and "--verbose" in extra:  # ours, not Beam's
        extra = [a for a in extra if a != "--verbose"]
        args.verbose = True
    args.extra = extra  # `run` and `demo` pass their options on (Beam pipeline options included)
    before = os.environ.get(VERBOSE_ENV)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"  # for this command only: restored below (main() may be called again)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one line, no traceback, no content
        if isinstance(exc, (ConfigError, SnapshotError)):
            error(str(exc))
            return 2
        raise
    finally:
        if before is None:
            os.environ.pop(VERBOSE_ENV, None)
        else:
            os.environ[VERBOSE_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
