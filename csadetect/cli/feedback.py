"""``csadetect feedback``: the feedback pipeline (DESIGN §8; ``docs/feedback.md``). Beam pipeline
options pass through, as for ``csadetect run``; the pipeline is :mod:`csadetect.pipelines.feedback`."""
from __future__ import annotations


def _cmd_feedback(args) -> int:
    from csadetect.pipelines.feedback import main  # lazy: Beam, only when the command runs

    config = getattr(args, "config", None)
    return main((["--config", config] if config else []) + list(getattr(args, "extra", []) or []))


def register(subparsers):
    """``csadetect feedback``: Beam pipeline options pass through (like ``csadetect run``)."""
    p = subparsers.add_parser(
        "feedback", help="join EU Centre verdicts to reports: precision, alerts, examples, notifications",
        add_help=False,
    )
    p.set_defaults(func=_cmd_feedback, passthrough=True)
    return p
