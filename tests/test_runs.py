"""Runs (issue 13 §1, "nothing is overwritten or lost"): every pipeline run writes its reports,
dead letters, stats and review items under its own run id; report ids differ between runs; a run
never writes into a run directory that holds records; readers take every run or a chosen one; no
temporary folders are left behind. The helpers are :mod:`csadetect.core.runs`."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from csadetect.cli.main import main as cli_main
from csadetect.core import runs
from csadetect.core.ids import is_safe_id
from csadetect.events.event import make_event
from csadetect.media import synth
from tests.conftest import signed_indicator_db

# -- the helpers ------------------------------------------------------------------------------


def test_new_run_ids_are_safe_dated_and_distinct():
    when = datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc)
    a, b = runs.new_run_id(when), runs.new_run_id(when)
    assert a.startswith("20261202T233000Z-") and len(a) == len("20261202T233000Z-3fa1c2")
    assert is_safe_id(a) and a != b


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x y", "a\nb", None, "x" * 129])
def test_a_run_id_must_be_a_safe_id(bad):
    with pytest.raises(runs.RunError) as err:
        runs.run_dir("out/reports", bad)
    assert "\n" not in str(err.value) and (not bad or bad.strip() == "" or bad not in str(err.value))


def test_listing_choosing_and_checking_runs(tmp_path):
    base = tmp_path / "reports"
    (base / "run-b").mkdir(parents=True)
    (base / "run-a" / ".temp-beam-1").mkdir(parents=True)  # only a temporary folder: no records
    (base / ".temp123").mkdir()
    (base / "legacy.jsonl").write_text("{}\n")
    (base / "run-b" / "reports-00000-of-00001.jsonl").write_text("{}\n")
    assert runs.list_runs(str(base)) == ["run-a", "run-b"]
    assert runs.list_runs(str(tmp_path / "missing")) == [] and runs.list_runs(None) == []
    assert runs.choose(str(base), "run-b") == str(base / "run-b")
    with pytest.raises(runs.RunError, match=r"no run run-c in store .*; available runs: run-a, run-b$"):
        runs.choose(str(base), "run-c")
    assert not runs.holds_records(str(base / "run-a")) and runs.holds_records(str(base / "run-b"))
    runs.check_fresh([str(base), None], "run-a")  # empty (but for temp): may be used
    with pytest.raises(runs.RunError, match="run run-b already holds records"):
        runs.check_fresh([str(tmp_path / "other"), str(base)], "run-b")
    assert runs.pattern(str(base), ".jsonl") == str(base / "**.jsonl")
    assert runs.pattern(str(base), ".jsonl", "run-b") == str(base / "run-b" / "*.jsonl")
    assert runs.run_of(str(base), str(base / "run-b" / "x.jsonl")) == "run-b"
    assert runs.run_of(str(base), str(base / "legacy.jsonl")) is None
    assert runs.remove_temp_dirs([str(base)]) == [str(base / ".temp123"), str(base / "run-a" / ".temp-beam-1")]
    assert not (base / ".temp123").exists() and (base / "run-b" / "reports-00000-of-00001.jsonl").exists()


def test_run_dirs_on_a_beam_filesystem(tmp_path, monkeypatch):
    """The same helpers through Beam's FileSystems (as for gs://)."""
    from csadetect.core import fs

    monkeypatch.setattr(fs, "FORCE_BEAM", True)
    base = tmp_path / "stats"
    (base / "r1").mkdir(parents=True)
    (base / "r1" / "stats-1.jsonl").write_text("{}\n")
    (base / "r2" / ".temp-beam-x").mkdir(parents=True)
    (base / "r2" / ".temp-beam-x" / "part").write_text("")
    assert runs.list_runs(str(base)) == ["r1", "r2"]
    assert runs.holds_records(str(base / "r1")) and not runs.holds_records(str(base / "r2"))
    assert runs.run_dir(str(base), "r1") == str(base / "r1")


@pytest.mark.parametrize("beam_fs", [False, True])
def test_review_items_are_found_by_report_id_in_any_run(tmp_path, monkeypatch, beam_fs):
    """One lookup (``ReviewStore.locate``) finds an item in whichever run queued it; a store scoped
    to a run puts items there and sees only them; items of the old flat layout are still found."""
    from csadetect.core import fs
    from csadetect.reports.schema import REVIEW_FIELDS
    from csadetect.review.store import ReviewStore

    monkeypatch.setattr(fs, "FORCE_BEAM", beam_fs)
    root = str(tmp_path / "review")

    def item(rid):
        return dict(dict.fromkeys(REVIEW_FIELDS), report_id=rid, detector="known-hash")

    a, b, flat = "a" * 32, "b" * 32, "c" * 32
    assert ReviewStore(root, "run-1").put(item(a)) == str(tmp_path / "review" / "run-1" / f"{a}.parquet")
    ReviewStore(root, "run-2").put(item(b))
    ReviewStore(root).put(item(flat))  # an item of the layout before run directories
    every = ReviewStore(root)
    assert every.ids() == [a, b, flat]
    assert every.run_of(a) == "run-1" and every.run_of(b) == "run-2" and every.run_of(flat) is None
    assert every.get(b)["report_id"] == b and ReviewStore(root, "run-1").get(b) is None
    assert ReviewStore(root, "run-2").ids() == [b]
    assert every.delete(a) and every.locate(a) is None and not every.delete(a)
    assert every.ids() == [b, flat]


# -- two pipeline runs into the same directories -----------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, report_keys):
    """A signed snapshot of two known pictures; events: an exact copy (reported), a recompressed
    copy (a PDQ match above ``auto_confirm_distance`` 0: human review), an unrelated picture
    (non-hit) and a malformed line (dead letter). Grooming and the image models are off."""
    work = tmp_path_factory.mktemp("runs")
    known = [synth.synthetic_image(700 + i) for i in range(2)]
    paths = signed_indicator_db(work, [synth.jpeg_bytes(img) for img in known])
    lines = [
        json.dumps(make_event("exact", Path(paths[0]).read_bytes())),
        json.dumps(make_event("recompressed", synth.jpeg_bytes(known[1].resize((300, 200)), 30))),
        json.dumps(make_event("other", synth.jpeg_bytes(synth.synthetic_image(7777)), account="acct-other")),
        "not json",
    ]
    events = work / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    out = work / "out"
    config = work / "config.json"
    config.write_text(json.dumps({
        "reports": report_keys["reports"], "grooming": {"enabled": False}, "embedding": {"enabled": False},
        "new_material": {"enabled": False}, "match": {"auto_confirm_distance": 0},
        "sinks": {"report_dir": str(out / "reports"), "dead_letter_dir": str(out / "dead_letters"),
                  "review_dir": str(out / "review")},
        "stores": {"stats_dir": str(out / "stats")},
    }))
    argv = ["--config", str(config), "--input_glob", str(events), "--indicators", str(work / "db"),
            "--public_key", str(work / "keys" / "public.pem"), "--runner", "FnApiRunner"]
    return {"work": work, "out": out, "argv": argv, "config": str(config), "keys": report_keys["paths"]}


def _run(world, capsys, *extra) -> tuple[int, dict, str]:
    from csadetect.pipelines.detect import main

    rc = main(world["argv"] + list(extra))
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return rc, (json.loads(lines[-1]) if lines else {}), captured.err


@pytest.fixture(scope="module")
def two_runs(world):
    """The pipeline run twice into the same configured directories."""
    from csadetect.pipelines.detect import run

    first = run(list(world["argv"]))
    second = run(list(world["argv"]))
    return first.run_id, second.run_id


def _jsonl(folder: Path) -> list:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.open() if line.strip()]


def test_two_runs_keep_both_runs_records(world, two_runs):
    from csadetect.review.store import ReviewStore

    out = world["out"]
    first, second = two_runs
    assert first != second and is_safe_id(first) and is_safe_id(second)
    ids = {}
    for run in two_runs:
        reports = _jsonl(out / "reports" / run)
        assert [r["event_id"] for r in reports] == ["exact"]
        assert {f.suffix for f in (out / "reports" / run).iterdir()} == {".jsonl", ".parquet"}
        dead = _jsonl(out / "dead_letters" / run)
        assert [d["stage"] for d in dead] == ["parse"]
        stats = _jsonl(out / "stats" / run)
        scanned = sum(s["value"] for s in stats if s["metric"] == "scanned")
        assert scanned == 3  # the three pictures of this run (the bad line never parsed)
        items = list(ReviewStore(str(out / "review"), run).items())
        assert [i["event_id"] for i in items] == ["recompressed"]
        ids[run] = {reports[0]["report_id"], items[0]["report_id"]}
    assert not ids[first] & ids[second]  # report ids are unique across runs
    assert sorted(os.listdir(out / "reports")) == sorted(two_runs)  # nothing at the top level
    every = ReviewStore(str(out / "review"))
    assert sorted(every.ids()) == sorted(i for run in two_runs for i in ids[run] if every.locate(i))
    assert len(every.ids()) == 2 and {every.run_of(i) for i in every.ids()} == set(two_runs)
    everything = "".join(p.read_text(errors="replace") for p in out.rglob("*.jsonl"))
    assert "acct-other" not in everything and '"other"' not in everything  # the non-hit left nothing


def test_no_temporary_folders_remain(world, two_runs):
    left = [str(p) for p in world["out"].rglob(".temp*")]
    assert left == []


def test_a_given_run_id_whose_directory_holds_records_is_refused(world, two_runs, capsys):
    first, _ = two_runs
    before = sorted(str(p) for p in world["out"].rglob("*") if p.is_file())
    rc, _summary, err = _run(world, capsys, "--run_id", first)
    assert rc == 2
    (line,) = [l for l in err.splitlines() if l.startswith("error:")]
    assert f"run {first} already holds records" in line and "Traceback" not in err
    assert err.strip() == line  # the refusal alone: no effective-options block before it
    assert sorted(str(p) for p in world["out"].rglob("*") if p.is_file()) == before  # nothing written
    rc, _summary, err = _run(world, capsys, "--run_id", "../escape")
    assert rc == 2 and "--run_id must be 1-128 letters" in err and "Traceback" not in err


def test_a_given_new_run_id_is_used_and_reported(world, two_runs, capsys):
    rc, summary, err = _run(world, capsys, "--run_id", "nightly-2026-12-02")
    assert rc == 0 and summary["run_id"] == "nightly-2026-12-02"
    assert "run id nightly-2026-12-02" in err
    assert summary["report"] == 1 and summary["dead_lettered"] == 1
    assert _jsonl(world["out"] / "reports" / "nightly-2026-12-02")


def test_reports_verify_every_run_or_a_chosen_one(world, two_runs, capsys):
    first, second = two_runs
    reports = str(world["out"] / "reports")
    key = world["keys"]["provider_public_key"]
    assert cli_main(["reports", "verify", "--public-key", key, reports]) == 0
    captured = capsys.readouterr()
    every = [json.loads(l) for l in captured.out.splitlines()]
    assert len(every) >= 2 and all(r["ok"] for r in every)  # every run's reports (and more runs' of other tests)
    assert len({r["report_id"] for r in every}) == len(every)  # each once: the Parquet copy of a JSON line is skipped
    assert "repeated rows skipped" in captured.err
    for run in (first, second):
        assert {r["report_id"] for r in _jsonl(world["out"] / "reports" / run)} <= {r["report_id"] for r in every}
    assert cli_main(["reports", "verify", "--public-key", key, "--run", second, reports]) == 0
    chosen = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(chosen) == 1
    assert {r["report_id"] for r in chosen} == {r["report_id"] for r in _jsonl(world["out"] / "reports" / second)}
    assert cli_main(["reports", "verify", "--public-key", key, "--run", "no-such-run", reports]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: no run no-such-run in report directory")
    assert first in err and second in err  # names the available runs


def test_reports_verify_reads_standard_input(world, two_runs, capsys, monkeypatch):
    """`reports verify -`: JSON Lines reports piped in (e.g. from `csadetect pubsub pull`)."""
    import io
    import sys

    _, second = two_runs
    key = world["keys"]["provider_public_key"]
    lines = "".join(p.read_text() for p in sorted((world["out"] / "reports" / second).glob("*.jsonl")))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines.encode() + b'{"a": 1, "a": 2}\n')))
    assert cli_main(["reports", "verify", "--public-key", key, "-"]) == 1  # the crafted line fails
    out = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["ok"] for r in out] == [True, False]
    assert out[0]["report_id"] == _jsonl(world["out"] / "reports" / second)[0]["report_id"]
    assert out[1]["error"].startswith("-:2: duplicate key")


def test_transparency_sums_every_run_or_counts_a_chosen_one(world, two_runs, tmp_path, capsys):
    first, _ = two_runs
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    stats = str(world["out"] / "stats")
    common = ["transparency", "--from", day, "--to", day, "--stats-dir", stats,
              "--feedback-dir", str(tmp_path / "fb"), "--complaints-dir", str(tmp_path / "c"), "--quiet"]
    assert cli_main(common + ["--out", str(tmp_path / "all")]) == 0
    every = json.loads(capsys.readouterr().out.splitlines()[-1])["headline"]
    assert cli_main(common + ["--out", str(tmp_path / "one"), "--run", first]) == 0
    one = json.loads(capsys.readouterr().out.splitlines()[-1])["headline"]
    assert one["scanned"] == 3 and one["reported"] == 1
    runs_counted = len(runs.list_runs(stats))
    assert runs_counted >= 2 and every["scanned"] == 3 * runs_counted and every["reported"] == runs_counted
    assert cli_main(common + ["--out", str(tmp_path / "none"), "--run", "no-such-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no run no-such-run in stats directory" in err and first in err


def test_review_decide_keeps_the_report_with_its_run(world, two_runs, capsys):
    """A confirmed item of one run becomes a report in that run's directory; ``review list --run``
    sees that run's items only."""
    first, second = two_runs
    common = ["--config", world["config"]]
    assert cli_main(["review", "list", "--run", second] + common) == 0
    (item,) = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert cli_main(["review", "list", "--run", "no-such-run"] + common) == 1
    assert "available runs" in capsys.readouterr().err
    assert cli_main(["review", "decide", item["report_id"], "--confirm", "--reviewer", "r1"] + common) == 0
    decided = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert decided["reported"] and all(f"{os.sep}{second}{os.sep}" in f for f in decided["files"])
    reports = _jsonl(world["out"] / "reports" / second)
    assert {r["report_id"] for r in reports} >= {item["report_id"]}
    assert list((world["out"] / "stats" / second).glob("stats-*.jsonl"))
    assert cli_main(["review", "list", "--run", first] + common) == 0  # the first run's item is still there
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_feedback_reads_every_run_by_default(world, two_runs):
    from csadetect.config.settings import load_settings
    from csadetect.pipelines.feedback import sources_from
    from csadetect.pipelines.options import FeedbackOptions
    from apache_beam.options.pipeline_options import PipelineOptions
    from csadetect.core import fs

    settings = load_settings(world["config"], overrides={"feedback": {"verdict_glob": "v/*.jsonl"}})
    opts = PipelineOptions([]).view_as(FeedbackOptions)
    glob = sources_from(settings, opts, False).report_glob
    found = {m.path for m in fs.match(glob)}
    for run in two_runs:
        assert any(f"{os.sep}{run}{os.sep}" in p for p in found)


def test_retention_finds_every_run(world, two_runs, tmp_path):
    from datetime import timedelta

    from csadetect.compliance.retention import run_retention
    from csadetect.config.settings import load_settings

    elsewhere = str(tmp_path / "none")  # the stores this test does not look at
    settings = load_settings(world["config"], overrides={
        "retention": {"log_dir": str(tmp_path / "log"), "holds_file": str(tmp_path / "holds.jsonl")},
        "console": {"reports_dir": elsewhere, "feedback_dir": elsewhere, "provider_requests_dir": elsewhere},
        "feedback": {"notifications_dir": elsewhere}, "stores": {"complaints_dir": elsewhere}})
    later = datetime.now(timezone.utc) + timedelta(days=3650)
    result = run_retention(settings, later, dry_run=True)
    counts = result.counts()
    assert counts.get("reports", 0) >= 2 and counts.get("review", 0) >= 1  # both runs' reports and items
    assert counts.get("dead_letters", 0) >= 2


def test_retention_prunes_every_run(world, two_runs, tmp_path):
    """A real retention run (on a copy of the stores) deletes the expired records of every run."""
    import shutil
    from datetime import timedelta

    from csadetect.compliance.retention import run_retention
    from csadetect.config.settings import load_settings

    out = tmp_path / "out"
    shutil.copytree(world["out"], out)
    elsewhere = str(tmp_path / "none")
    settings = load_settings(world["config"], overrides={
        "sinks": {"report_dir": str(out / "reports"), "dead_letter_dir": str(out / "dead_letters"),
                  "review_dir": str(out / "review")},
        "retention": {"log_dir": str(tmp_path / "log"), "holds_file": str(tmp_path / "holds.jsonl")},
        "console": {"reports_dir": elsewhere, "feedback_dir": elsewhere, "provider_requests_dir": elsewhere},
        "feedback": {"notifications_dir": elsewhere}, "stores": {"complaints_dir": elsewhere, "stats_dir": str(out / "stats")}})
    later = datetime.now(timezone.utc) + timedelta(days=3650)
    run_retention(settings, later)
    for run in two_runs:
        assert list((out / "reports" / run).glob("*")) == []  # files left with no rows are deleted
        assert list((out / "review" / run).glob("*.parquet")) == []
        assert list((out / "dead_letters" / run).glob("*")) == []
        assert list((out / "stats" / run).glob("*.jsonl"))  # id-free stats stay
    logged = [json.loads(line) for line in (tmp_path / "log" / "deletions.jsonl").read_text().splitlines()]
    deleted = {d.get("id") for d in logged if d.get("store") == "reports"}
    for run in two_runs:  # each run's report ids are in the deletion log
        assert {r["report_id"] for r in _jsonl(world["out"] / "reports" / run)} <= deleted
