"""pipelines package: entry points that wire ``transforms/`` into Beam graphs (:mod:`.detect`,
:mod:`.feedback`), their options (:mod:`.options`) and event sources (:mod:`.sources`)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from apache_beam.metrics.metric import MetricsFilter

from csadetect.config.settings import ConfigError
from csadetect.transforms.common import NAMESPACE


def counter_values(result) -> dict[str, int]:
    """Committed counter values of the run, by name (attempted where a runner has no committed)."""
    out: dict[str, int] = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # some runners do not report metrics
        return out
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def pipeline_main(argv, prog: str, doc: str, options_cls, run: Callable, summary: Callable) -> int:
    """The shared ``main`` of a pipeline entry point: ``--help`` lists the pipeline's own options
    (Beam's pass through), a :class:`csadetect.config.settings.ConfigError` becomes one line and exit
    code 2, and ``summary(run(argv))`` is printed as one JSON line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        parser = argparse.ArgumentParser(
            prog=prog, description=(doc or "").split("\n\n")[0],
            epilog="Any Apache Beam pipeline option (--runner, --streaming, --project, ...) passes through.",
        )
        options_cls._add_argparse_args(parser)
        parser.print_help()
        return 0
    try:
        result = run(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary(result)), flush=True)
    return 0
