"""The FULL streaming graphs translated for Dataflow offline, and their step names kept stable.

Both pipelines are run with ``--runner=DataflowRunner --dry_run=True --no_auth`` (DESIGN §9): the
Dataflow job (its portable pipeline proto) is built, and nothing is submitted: the Dataflow API
client is replaced by one that fails the test if it is ever created. The detection pipeline runs
with every detector on (known, embedding, new material, grooming), the review outputs (topic and
store, a verdict subscription: ``ApplyVerdicts`` and ``ExpireReview`` are in the graph), stats and
dead letters, through ``--profile dataflow`` with its ``${ENV}`` placeholders set; the streaming
feedback pipeline reads report and verdict subscriptions and publishes notifications, with the
Dataflow options given as plain flags.

Step names. Dataflow's in-place update (``--update --job_name NAME``) matches the steps of the
running job by their full names; a step that disappears or is renamed makes the update fail unless
it is mapped with ``--transform_name_mapping``. ``tests/data/step_names.json`` records the unique
full names of every transform of the Dataflow job's pipeline (``result.job.proto_pipeline``, i.e.
after the runner's own overrides: what the service sees) for both graphs. The policy:

* a recorded name that is missing now (removed or renamed) FAILS, with a diff of the two lists;
* a new name passes (adding steps is update-compatible) but is reported as a ``StepNamesAdded``
  warning in pytest's summary; set ``CSADETECT_STRICT_STEP_NAMES=1`` to fail on additions too;
* after an intended change, regenerate the file and commit it with the change:

      /tmp/req/venv/bin/python -m tests.test_dataflow_translation --update-golden

  (any Python with the requirements; run from the repository root). It prints what changed.

Names of Beam's own sub-transforms are part of the list, so a Beam upgrade that renames them
shows up here too (the file records the Beam version it was written with).
"""
from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "step_names.json"
REGENERATE = "python -m tests.test_dataflow_translation --update-golden"
PROJECT = "example-project"
BUCKET = "gs://example-bucket"

# What the dataflow profile reads from the environment (the test sets them; see csadetect/config/dataflow.yaml).
PROFILE_ENV = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "DATAFLOW_REGION": "us-central1",
    "DATAFLOW_TEMP_LOCATION": f"{BUCKET}/tmp",
    "CSADETECT_BUCKET": "example-bucket",
}
UNSET_ENV = ("DATAFLOW_STAGING_LOCATION", "DATAFLOW_SERVICE_ACCOUNT", "DATAFLOW_SUBNETWORK", "DATAFLOW_KMS_KEY",
             "DATAFLOW_MAX_WORKERS", "DATAFLOW_MACHINE_TYPE")
DRY_RUN = ["--dry_run=True", "--no_auth", f"--staging_location={BUCKET}/staging", "--sdk_location=container"]
DATAFLOW_FLAGS = ["--runner=DataflowRunner", *DRY_RUN, f"--project={PROJECT}", "--region=us-central1",
                  f"--temp_location={BUCKET}/tmp", "--streaming"]


# removed when the test process ends (a folder made per call was left behind in the temp dir)
_ORDERS_DIR = tempfile.TemporaryDirectory(prefix="csadetect-orders-")


def orders_config() -> str:
    """A config file with a real (non-demo) detection order: the demo order is refused on Dataflow."""
    path = Path(_ORDERS_DIR.name) / "orders.json"
    path.write_text(json.dumps({"orders": [{
        "order_id": "ORDER-2026-7", "authority": "example coordinating authority",
        "detection_types": ["known", "new", "grooming"], "services": ["photos", "videos", "chat"],
        "start": "2026-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}]}))
    return str(path)


def detect_argv() -> list[str]:
    """The detection pipeline, every feature on, through ``--profile dataflow``."""
    return [
        "--profile=dataflow", f"--config={orders_config()}", *DRY_RUN, f"--setup_file={REPO / 'setup.py'}",
        f"--input_subscription=projects/{PROJECT}/subscriptions/uploads",
        f"--indicators={BUCKET}/indicators", f"--public_key={BUCKET}/keys/indicators_public.pem",
        f"--report_topic=projects/{PROJECT}/topics/hits",
        f"--review_topic=projects/{PROJECT}/topics/review",
        f"--verdict_subscription=projects/{PROJECT}/subscriptions/reviewer-verdicts",
        f"--dead_letter_topic=projects/{PROJECT}/topics/dead-letters",
        # secrets: the effective-options block must mask them
        f"--signing_key={BUCKET}/keys/SECRET-signing.pem", f"--evidence_key={BUCKET}/keys/SECRET-evidence.pem",
        f"--dataflow_kms_key=projects/{PROJECT}/locations/us-central1/keyRings/r/cryptoKeys/SECRET-kms",
    ]


def feedback_argv() -> list[str]:
    """The streaming feedback pipeline, Dataflow options as plain flags."""
    return [
        *DATAFLOW_FLAGS, f"--config={orders_config()}",
        f"--report_subscription=projects/{PROJECT}/subscriptions/reports",
        f"--verdict_subscription=projects/{PROJECT}/subscriptions/centre-verdicts",
        f"--notifications_topic=projects/{PROJECT}/topics/notifications",
        f"--out_dir={BUCKET}/feedback", f"--notifications_dir={BUCKET}/notifications",
        f"--public_key={BUCKET}/keys/provider_public.pem",
    ]


class NoSubmission(AssertionError):
    pass


class _NoDataflowClient:
    """Stands in for the Dataflow API client: a dry run must never create one."""

    def __init__(self, *args, **kwargs):
        raise NoSubmission("the dry run tried to create a Dataflow API client (a job submission)")


@contextlib.contextmanager
def offline_dataflow(env: dict):
    """The environment for a dry run: ``env`` set, the profile's other variables unset, and no
    way to reach the Dataflow service."""
    from apache_beam.runners.dataflow.internal import apiclient

    with mock.patch.dict(os.environ, env), mock.patch.object(apiclient, "DataflowApplicationClient", _NoDataflowClient):
        for name in UNSET_ENV:
            os.environ.pop(name, None)
        yield


def step_names(result) -> list[str]:
    """Sorted unique full names of the Dataflow job's transforms (the pipeline's root, which is
    not a step and is named after its generated id, left out)."""
    proto = result.job.proto_pipeline
    roots = set(proto.root_transform_ids)
    return sorted({t.unique_name for tid, t in proto.components.transforms.items() if t.unique_name and tid not in roots})


def translate(which: str) -> dict:
    """Dry-run ``which`` (``detect`` or ``feedback``) on Dataflow: ``{"result", "steps", "stderr"}``."""
    if which == "detect":
        from csadetect.pipelines.detect import run

        argv = detect_argv()
    else:
        from csadetect.pipelines.feedback import run

        argv = feedback_argv()
    err = io.StringIO()
    with offline_dataflow(PROFILE_ENV), contextlib.redirect_stderr(err):
        outcome = run(argv)
    result = getattr(outcome, "result", outcome)  # feedback returns a FeedbackRun
    return {"result": result, "steps": step_names(result), "stderr": err.getvalue()}


# -- the step-name check ------------------------------------------------------------------------


class StepNamesAdded(UserWarning):
    """New step names (update-compatible, but the golden file should record them)."""


def load_golden(path: Path = GOLDEN) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def check_step_names(actual: dict[str, list[str]], golden: dict) -> dict[str, list[str]]:
    """Compare the current step names (per pipeline) with the golden ones. Raises AssertionError
    with a diff when a recorded name is missing (removed or renamed); returns the added names per
    pipeline (and fails on them too when CSADETECT_STRICT_STEP_NAMES=1)."""
    import apache_beam as beam

    problems, added = [], {}
    strict = os.environ.get("CSADETECT_STRICT_STEP_NAMES") == "1"
    for name in sorted(set(golden.get("pipelines", {})) | set(actual)):
        before = sorted(golden.get("pipelines", {}).get(name, []))
        now = sorted(actual.get(name, []))
        gone = [s for s in before if s not in set(now)]
        new = [s for s in now if s not in set(before)]
        if new:
            added[name] = new
        if gone or (strict and new):
            diff = "\n".join(difflib.unified_diff(before, now, f"tests/data/step_names.json [{name}]",
                                                  f"current {name} graph", lineterm="", n=1))
            hints = []
            for old in gone:
                close = difflib.get_close_matches(old, new, n=1, cutoff=0.6)
                hints.append(f"  {old!r} -> {close[0]!r}?" if close else f"  {old!r} removed")
            problems.append(f"{name}: {len(gone)} step name(s) missing, {len(new)} new\n"
                            + "\n".join(hints) + "\n" + diff)
    if problems:
        version = golden.get("beam_version")
        beam_note = (f"\n(the golden file was written with Beam {version}, this is Beam {beam.__version__}: "
                     "Beam's own sub-transform names may have changed)") if version and version != beam.__version__ else ""
        raise AssertionError(
            "step names changed. Dataflow's in-place --update matches the running job's steps by these names: "
            "a missing one breaks the update unless mapped with --transform_name_mapping='{\"Old\": \"New\"}'.\n"
            + "\n".join(problems) + beam_note
            + f"\nIf the change is intended, regenerate the golden file and commit it: {REGENERATE}"
        )
    return added


def golden_document(steps: dict[str, list[str]]) -> dict:
    import apache_beam as beam

    return {
        "comment": "Unique full names of the Dataflow job's transforms (streaming, every feature on); "
                   "checked by tests/test_dataflow_translation.py: a missing name fails, a new one is reported.",
        "regenerate": REGENERATE,
        "beam_version": beam.__version__,
        "pipelines": {name: sorted(names) for name, names in sorted(steps.items())},
    }


# -- tests --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def translated():
    return {which: translate(which) for which in ("detect", "feedback")}


def _top_level(steps):
    return {s.split("/")[0] for s in steps}


def test_full_detection_graph_translates_for_dataflow(translated):
    """--profile dataflow (project, region and temp_location from the environment): the whole
    streaming graph becomes a Dataflow streaming job, and nothing is submitted."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions
    from apache_beam.runners.runner import PipelineState

    t = translated["detect"]
    result = t["result"]
    assert result.state == PipelineState.DONE and result.job is not None
    job = result.job
    assert job.proto.type.name == "JOB_TYPE_STREAMING"
    assert not job.proto.id  # the service never assigned a job id: not submitted
    gcp = job.options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region) == (PROJECT, "us-central1")
    assert gcp.temp_location.startswith(f"{BUCKET}/tmp")
    assert job.options.view_as(StandardOptions).streaming
    labels = {p.key: p.value for p in job.proto.labels.additionalProperties}  # an apitools map
    assert labels["app"] == "csadetect"  # the profile's labels reached the job
    top = _top_level(t["steps"])
    expected = {
        "ReadEvents", "ParseEvents", "ApplyOrders", "ResolveContent", "HashMedia", "EmbedImages", "MatchIndicators",
        "GuardMatches", "ClassifyNew", "ClassifyGrooming", "Decide", "BuildReports", "DedupReports", "SealAndSign", "MergeReview",
        "QueueForReview", "WriteReview", "ReadVerdicts", "ApplyVerdicts", "ExpireReview", "MergeReports",
        "WriteReports", "MergeDeadLetters", "WriteDeadLetters", "MergeStats", "WriteStats", "StatReported",
    }
    assert expected <= top, sorted(expected - top)
    assert "TextNotScanned" not in top  # grooming is on


def test_feedback_streaming_graph_translates_for_dataflow(translated):
    from apache_beam.runners.runner import PipelineState

    t = translated["feedback"]
    assert t["result"].state == PipelineState.DONE
    assert t["result"].job.proto.type.name == "JOB_TYPE_STREAMING" and not t["result"].job.proto.id
    top = _top_level(t["steps"])
    expected = {"ReadReportsPubSub", "ParseReports", "ReadVerdictsPubSub", "ParseVerdicts", "JoinVerdicts",
                "PrecisionPerDetector", "Alerts", "LabelledExamples", "ScheduleNotifications", "WritePrecision",
                "WriteAlerts", "WriteNotifications", "ExamplesKnown", "WriteExamplesGrooming"}
    assert expected <= top, sorted(expected - top)


def test_effective_options_are_printed_once_with_secrets_masked(translated):
    err = translated["detect"]["stderr"]
    assert err.count("csadetect run: effective options (profile dataflow)") == 1
    block = err.split("csadetect run: effective options", 1)[1]
    assert "  runner: DataflowRunner" in block
    assert f"--project={PROJECT}" in block and "--region=us-central1" in block and "--streaming=true" in block
    assert "--signing_key=****" in block and "--evidence_key=****" in block and "--dataflow_kms_key=****" in block
    assert "reports.signing_key: ****" in block
    assert "sinks.review_dir: gs://example-bucket/review" in block  # the profile's settings, $CSADETECT_BUCKET
    assert f"review.verdict_subscription: projects/{PROJECT}/subscriptions/reviewer-verdicts" in block
    assert "SECRET" not in err
    fb = translated["feedback"]["stderr"]
    assert "csadetect feedback: effective options (no profile)" in fb and "feedback.notifications_topic: projects/" in fb


def test_missing_required_dataflow_option_stops_before_the_graph(monkeypatch, capsys):
    """Without $DATAFLOW_REGION (and no --region) the dataflow profile stops with one line naming
    --region, before any graph is built; the same holds without a profile."""
    import csadetect.pipelines.detect as detect
    from csadetect.config.settings import ConfigError

    def no_graph(*args, **kwargs):
        raise AssertionError("the graph was built despite a missing option")

    monkeypatch.setattr(detect, "build_pipeline", no_graph)
    env = {k: v for k, v in PROFILE_ENV.items() if k != "DATAFLOW_REGION"}
    with offline_dataflow(env):
        os.environ.pop("DATAFLOW_REGION", None)
        with pytest.raises(ConfigError, match=r"the dataflow profile needs --region\b.*\$DATAFLOW_REGION"):
            detect.run(detect_argv())
        assert detect.main(detect_argv()) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: the dataflow profile needs --region") and "Traceback" not in "\n".join(err)
        argv = [a for a in feedback_argv() if not a.startswith("--temp_location")]
        from csadetect.pipelines.feedback import run as feedback_run

        with pytest.raises(ConfigError, match=r"DataflowRunner needs --temp_location"):
            feedback_run(argv)


def test_step_names_match_the_golden_file(translated):
    steps = {which: translated[which]["steps"] for which in ("detect", "feedback")}
    added = check_step_names(steps, load_golden())
    if added:
        warnings.warn(StepNamesAdded(
            "new step names (update-compatible; record them with `" + REGENERATE + "`): "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in added.items())))


def test_step_name_check_fails_on_a_renamed_step_and_reports_additions(translated, tmp_path):
    """The check can fail: a tmp copy of the golden file that records a step the graph no longer
    has (as after a rename) fails with a readable diff; a copy missing a step (a new step) passes
    and reports it."""
    steps = {which: translated[which]["steps"] for which in ("detect", "feedback")}
    golden = load_golden()
    renamed = json.loads(json.dumps(golden))
    detect_steps = renamed["pipelines"]["detect"]
    i = detect_steps.index("ApplyVerdicts")
    detect_steps[i] = "ApplyVerdictsOld"  # the running job had this name; the graph now says ApplyVerdicts
    path = tmp_path / "step_names.json"
    path.write_text(json.dumps(renamed))
    with pytest.raises(AssertionError) as err:
        check_step_names(steps, load_golden(path))
    message = str(err.value)
    assert "-ApplyVerdictsOld" in message and "+ApplyVerdicts" in message and REGENERATE in message
    assert "'ApplyVerdictsOld' -> 'ApplyVerdicts'?" in message and "--transform_name_mapping" in message

    fewer = json.loads(json.dumps(golden))
    fewer["pipelines"]["feedback"].remove("Alerts")
    path.write_text(json.dumps(fewer))
    assert check_step_names(steps, load_golden(path)) == {"feedback": ["Alerts"]}
    with mock.patch.dict(os.environ, {"CSADETECT_STRICT_STEP_NAMES": "1"}), pytest.raises(AssertionError, match=r"\+Alerts"):
        check_step_names(steps, load_golden(path))


def test_step_names_do_not_depend_on_our_source_lines(translated):
    """A label Beam derives from a lambda's source line (``Map(<lambda at decide.py:42>)``) changes
    whenever code above it moves, which would break --update for no reason: every step of ours is
    named explicitly. (Beam's own, such as ``Map(<lambda at fileio.py:810>)`` inside WriteToFiles,
    only change with a Beam upgrade, which this golden file reports.)"""
    import re

    ours = {p.name for d in ("pipelines", "transforms", "csadetect", "models", "indicators")
            for p in (REPO / d).rglob("*.py")}
    unstable = [s for which in translated for s in translated[which]["steps"]
                for f in re.findall(r"<lambda at ([\w.]+\.py):\d+>", s) if f in ours]
    assert not unstable, unstable


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Offline Dataflow translation; the step-name golden file.")
    parser.add_argument("--update-golden", action="store_true", help=f"rewrite {GOLDEN.relative_to(REPO)}")
    args = parser.parse_args(argv)
    steps = {which: translate(which)["steps"] for which in ("detect", "feedback")}
    old = load_golden() if GOLDEN.exists() else {"pipelines": {}}
    for name in sorted(steps):
        before, now = set(old.get("pipelines", {}).get(name, [])), set(steps[name])
        print(f"{name}: {len(now)} steps, {len(now - before)} new, {len(before - now)} gone", file=sys.stderr)
        for s in sorted(before - now):
            print(f"  - {s}", file=sys.stderr)
        for s in sorted(now - before):
            print(f"  + {s}", file=sys.stderr)
    if args.update_golden:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(golden_document(steps), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {GOLDEN}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
