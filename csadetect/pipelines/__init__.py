"""pipelines package: entry points that wire ``transforms/`` into Beam graphs (:mod:`.detect`,
:mod:`.feedback`), their options (:mod:`.options`), event sources and the Pub/Sub pre-flight check
(:mod:`.sources`), and what a running pipeline prints while it runs and when it is stopped
(:mod:`.progress`)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Callable

from csadetect.config.settings import ConfigError
from csadetect.pipelines.progress import ProgressOptions, counter_values, note_index_version, stopped_by

__all__ = ["counter_values", "note_index_version", "pipeline_main"]


def pipeline_main(argv, prog: str, doc: str, options_cls, run: Callable, summary: Callable) -> int:
    """The shared ``main`` of a pipeline entry point: ``--help`` lists the pipeline's own options
    (Beam's pass through), a :class:`csadetect.config.settings.ConfigError` becomes one line and exit
    code 2, and ``summary(run(argv))`` is printed as one JSON line: also after Ctrl-C (SIGINT) or
    SIGTERM stopped a running pipeline, which then exits with 130 (143), without a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        parser = argparse.ArgumentParser(
            prog=prog, description=(doc or "").split("\n\n")[0],
            epilog="Any Apache Beam pipeline option (--runner, --streaming, --project, ...) passes through.",
        )
        options_cls._add_argparse_args(parser)
        ProgressOptions._add_argparse_args(parser.add_argument_group("while it runs"))
        parser.print_help()
        return 0
    try:
        result = run(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # before the pipeline ran (or while a batch run was in progress)
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{signal.Signals(signum).name}: stopped before the pipeline finished", file=sys.stderr, flush=True)
        return 128 + int(signum)
    print(json.dumps(summary(result)), flush=True)
    signum = stopped_by()
    return 128 + int(signum) if signum else 0
