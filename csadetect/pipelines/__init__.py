"""pipelines package: entry points that wire ``transforms/`` into Beam graphs."""
from __future__ import annotations

import json
import sys
from typing import Callable


def counter_values(result) -> dict[str, int]:
    """Committed counter values of the run, by name (attempted where a runner has no committed)."""
    from apache_beam.metrics.metric import MetricsFilter

    from csadetect.transforms.common import NAMESPACE

    out: dict[str, int] = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # some runners do not report metrics
        return out
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def share_options(parser) -> None:
    """Let an options class define options another one in the process defines too. Run as
    ``python -m csadetect.pipelines.detect``, the module exists twice (``__main__`` and ``csadetect.pipelines.detect``),
    and Beam parses every ``PipelineOptions`` subclass with one parser; the two pipelines also
    share ``--config``, ``--public_key``, ``--verdict_subscription`` and ``--window_seconds``."""
    for container in [parser] + list(getattr(parser, "_action_groups", [])):
        container.conflict_handler = "resolve"


def pipeline_main(argv, prog: str, doc: str, options_cls, run: Callable, summary: Callable) -> int:
    """The shared ``main`` of a pipeline entry point: ``--help`` lists the pipeline's own options
    (Beam's pass through), a :class:`csadetect.config.settings.ConfigError` becomes one line and exit
    code 2, and ``summary(run(argv))`` is printed as one JSON line."""
    import argparse

    from csadetect.config.settings import ConfigError

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
