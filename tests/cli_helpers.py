"""Running the indicator commands (``indicators``, ``match``, ``hash``) in-process, through a parser
built like csadetect's, for tests that read their JSON lines and stderr."""
from __future__ import annotations

import argparse
import json

from csadetect.cli import hashing
from csadetect.cli import indicators as cli
from csadetect.cli import matching


def run_cli(capsys, *argv):
    """``(exit code, the JSON lines on stdout, stderr)`` of ``csadetect ARGV``."""
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None)
    subparsers = parser.add_subparsers(dest="command", required=True)
    cli.register(subparsers)
    matching.register(subparsers)
    hashing.register(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err
