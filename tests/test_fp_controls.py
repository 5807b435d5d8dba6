"""False-positive controls on known-material matches (docs/false-positives.md): the allow-list, the
per-source and per-category thresholds and the flood guard, as plain-Python cores
(csadetect/indicators/controls.py), through the GuardMatches DoFn (csadetect/transforms/guard.py)
and in the detection pipeline on the FnApiRunner. All pictures are generated (benign)."""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils import shared

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.cli.main import main as cli_main
from csadetect.config.settings import (AllowListSettings, ConfigError, FloodGuardSettings, MatchSettings,
                                       load_settings)
from csadetect.core.keys import generate_keypair
from csadetect.events.event import Event, make_event
from csadetect.indicators.controls import (AllowList, FloodGuard, ReleaseWatcher, Thresholds, read_releases,
                                           suppress, write_release)
from csadetect.indicators.index import Match
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import SnapshotError, build_snapshot
from csadetect.media import synth
from csadetect.media.hashing import hash_image
from csadetect.pipelines.detect import Source, build_pipeline, check_fp_controls, outcome_counts
from csadetect.reports.hits import HashedItem, MatchedItem
from csadetect.transforms.decide import REVIEW
from csadetect.transforms.guard import GuardMatchesFn, ProcessControls


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def m(ident, kind="pdq", distance=0, category="unspecified", source="eu-centre"):
    return Match(ident, kind, distance, category, None, source)


# ------------------------------------------------------------------------------ allow-list rule


def test_an_allowed_digest_suppresses_every_known_match():
    known = [m("k-pdq", "pdq", 4), m("k-md5", "md5"), m("k-sha", "sha256")]
    kept, gone = suppress(known, [m("a-md5", "md5")])
    assert kept == [] and gone == known


def test_an_allowed_perceptual_match_suppresses_known_matches_of_its_kind_only():
    known = [m("k-pdq", "pdq", 4), m("k-md5", "md5"), m("k-emb", "embedding", 0.02)]
    kept, gone = suppress(known, [m("a-pdq", "pdq", 10)])
    assert [x.indicator_id for x in kept] == ["k-md5", "k-emb"] and [x.indicator_id for x in gone] == ["k-pdq"]
    assert suppress(known, []) == (known, [])


# ------------------------------------------------------------------------------ thresholds


def _thresholds(by_source=None, by_category=None) -> Thresholds:
    match = load_settings(overrides={"match": {"thresholds": {"by_source": by_source or {},
                                                              "by_category": by_category or {}}}}).match
    return Thresholds.from_settings(match)


def test_the_strictest_applicable_threshold_wins():
    t = _thresholds({"partner": {"pdq": 20}}, {"cat-a": {"pdq": 10, "embedding": 0.05}})
    assert t.limit(m("x", "pdq", 15, "cat-a", "partner")) == 10  # category stricter than source
    assert t.limit(m("x", "pdq", 15, "other", "partner")) == 20
    assert t.limit(m("x", "pdq", 15, "other", "eu-centre")) is None  # nothing applies
    assert t.limit(m("x", "md5", 0, "cat-a", "partner")) is None
    kept, dropped = t.apply([m("a", "pdq", 15, "cat-a"), m("b", "pdq", 10, "cat-a"), m("c", "pdq", 25, "x", "partner"),
                             m("d", "pdq", 25), m("e", "embedding", 0.06, "cat-a")])
    assert [x.indicator_id for x in kept] == ["b", "d"] and [x.indicator_id for x in dropped] == ["a", "c", "e"]
    assert not _thresholds() and t


def test_thresholds_refuse_unknown_and_exact_kinds_in_one_line():
    with pytest.raises(ConfigError) as exc:
        _thresholds({"partner": {"pdqq": 5}})
    assert str(exc.value).startswith("invalid config at match.thresholds.by_source.partner.pdqq: 'pdqq' is not a kind")
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"by_category\.c\.md5: 'md5' matches exactly"):
        _thresholds(by_category={"c": {"md5": 0}})
    with pytest.raises(ConfigError, match=r"match\.thresholds\.by_source.*>= 0"):
        load_settings(overrides={"match": {"thresholds": {"by_source": {"p": {"pdq": -1}}}}})
    with pytest.raises(ConfigError, match=r"match\.thresholds\.by_sorce"):
        load_settings(overrides={"match": {"thresholds": {"by_sorce": {}}}})


def test_a_threshold_looser_than_the_global_one_is_named():
    t = _thresholds({"p": {"pdq": 40}, "q": {"pdq": 12}})
    assert t.without_effect(MatchSettings()) == ["match.thresholds.by_source.p.pdq (40 >= 31)"]


def test_allow_list_settings_need_a_key():
    with pytest.raises(ConfigError, match="allow_list.path needs allow_list.public_key"):
        load_settings(overrides={"allow_list": {"path": "somewhere"}})


# ------------------------------------------------------------------------------ flood guard


def test_flood_guard_quarantines_a_flooding_indicator_once_and_not_a_quiet_one():
    clock = FakeClock()
    guard = FloodGuard(window_seconds=100, share=0.2, min_matches=3, clock=clock)
    for _ in range(2):  # a quiet stream: every item matches, but fewer than min_matches
        seen = guard.observe(["bad"], version=1)
        assert not seen.quarantined and not seen.held
    seen = guard.observe(["bad", "other"], version=1)
    assert [q.indicator_id for q in seen.quarantined] == ["bad"] and seen.held == {"bad"}
    q = guard.quarantined["bad"]
    assert (q.matches, q.items, q.version) == (3, 3, 1) and q.share == 1.0
    seen = guard.observe(["bad"], version=1)
    assert not seen.quarantined and seen.held == {"bad"}  # tripped once, still held
    assert "other" not in guard.quarantined  # 1 match < min_matches


def test_flood_guard_needs_the_share_as_well_as_the_count():
    guard = FloodGuard(window_seconds=100, share=0.5, min_matches=2, clock=FakeClock())
    for i in range(10):
        guard.observe(["common"] if i % 3 == 0 else [], version=1)  # 4 of 10 items: 0.4 <= 0.5
    assert guard.quarantined == {} and guard.counts() == (10, {"common": 4})


def test_flood_guard_window_slides():
    clock = FakeClock()
    guard = FloodGuard(window_seconds=60, share=0.1, min_matches=3, buckets=6, clock=clock)
    guard.observe(["x"])
    guard.observe(["x"])
    clock.now += 61  # both matches left the window
    assert guard.counts() == (0, {})
    guard.observe(["x"])
    assert guard.quarantined == {}
    guard.observe(["x"])
    guard.observe(["x"])
    assert "x" in guard.quarantined


def test_flood_guard_release_and_new_version_lift_the_quarantine_and_clear_counts():
    guard = FloodGuard(window_seconds=100, share=0.1, min_matches=2, clock=FakeClock())
    guard.observe(["a", "b"], version=3)
    guard.observe(["a", "b"], version=3)
    assert set(guard.quarantined) == {"a", "b"}
    assert guard.release("a") and not guard.release("a") and not guard.release("never")
    assert guard.counts()[1] == {"b": 2}
    seen = guard.observe([], version=3)  # the same version releases nothing
    assert seen.released == () and set(guard.quarantined) == {"b"}
    seen = guard.observe(["a"], version=4)  # an item matched against a newer snapshot version
    assert seen.released == ("b",) and guard.quarantined == {} and guard.counts()[1] == {"a": 1}
    seen = guard.observe(["a"], version=4)  # it floods again: quarantined again, under version 4
    assert guard.quarantined["a"].version == 4


def test_release_records_are_new_files_read_once_per_process(tmp_path):
    directory = str(tmp_path / "releases")
    write_release(directory, "old-1")
    clock = FakeClock()
    watcher = ReleaseWatcher(directory, poll_seconds=30, clock=clock)  # records present at start count as seen
    first = write_release(directory, "ind-7", note="fixed upstream")
    second = write_release(directory, "ind-7")
    assert first["path"] != second["path"] and os.path.basename(first["path"]).startswith("release-")
    (tmp_path / "releases" / "release-junk.json").write_text("{not json")
    assert not watcher.due()
    clock.now += 30
    assert watcher.due() and watcher.poll() == (["ind-7", "ind-7"], 1)
    assert watcher.poll() == ([], 0)
    assert [r["indicator_id"] for r in read_releases(directory)] == ["old-1", "ind-7", "ind-7"]
    with pytest.raises(ValueError):
        write_release(directory, "two words")


def test_quarantine_release_command(tmp_path, capsys):
    directory = tmp_path / "fg"
    assert cli_main(["quarantine", "release", "ind-9-pdq", "--dir", str(directory), "--note", "checked"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["indicator_id"] == "ind-9-pdq" and record["note"] == "checked" and os.path.exists(record["path"])
    assert cli_main(["quarantine", "list", "--dir", str(directory)]) == 0
    assert [json.loads(l)["indicator_id"] for l in capsys.readouterr().out.splitlines()] == ["ind-9-pdq"]
    assert cli_main(["quarantine", "release", "bad\tid", "--dir", str(directory)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: an indicator id is")
    config = tmp_path / "c.yaml"
    config.write_text("flood_guard: {release_dir: null}\n")
    assert cli_main(["quarantine", "release", "x", "--config", str(config)]) == 1
    assert "flood_guard.release_dir is not set" in capsys.readouterr().err


# ------------------------------------------------------------------------------ allow-list snapshots


@pytest.fixture(scope="module")
def world(tmp_path_factory, report_keys):
    """Three known pictures in a signed indicator db; pictures 1 and 2 re-encoded; keys for an
    allow-list."""
    work = tmp_path_factory.mktemp("fp")
    images = [synth.synthetic_image(40 + i) for i in range(3)]
    paths = []
    for i, img in enumerate(images):
        path = work / f"known-{i}.jpg"
        path.write_bytes(synth.jpeg_bytes(img))
        paths.append(str(path))
    generate_keypair(work / "keys")
    rows = from_media(paths, MatchSettings())
    # picture 2's indicators come from a stricter partner list
    rows = [dataclasses.replace(r, source="strict-list") if Path(r.note).name == "known-2.jpg" else r for r in rows]
    build_snapshot(rows, work / "db", work / "keys" / "private.pem")
    generate_keypair(work / "allow-keys")
    near = {i: synth.jpeg_bytes(images[i], 30) for i in range(3)}  # re-encoded: PDQ near, digests differ
    return {"work": work, "paths": paths, "rows": rows, "near": near, "report_keys": report_keys}


def _settings(world, tmp, **extra):
    work = world["work"]
    overrides = {
        "indicators": {"path": str(work / "db"), "public_key": str(work / "keys" / "public.pem")},
        "sinks": {"report_dir": str(tmp / "reports"), "dead_letter_dir": str(tmp / "dead"),
                  "review_dir": str(tmp / "review")},
        "reports": world["report_keys"]["reports"], "stores": {"stats_dir": None},
        "embedding": {"enabled": False}, "new_material": {"enabled": False}, "grooming": {"enabled": False},
        "flood_guard": {"release_dir": str(tmp / "releases")},
    }
    for key, value in extra.items():
        overrides[key] = overrides.get(key, {}) | value
    return load_settings(overrides=overrides)


def _events(tmp, named: dict) -> str:
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(make_event(event_id, data)) + "\n" for event_id, data in named.items()))
    return str(path)


def _run(settings, events: str):
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=events))
    return p, outs


def _allow_list(world, tmp, rows, name="allow") -> dict:
    """A signed allow-list snapshot of ``rows`` (built as any indicator db) and its settings."""
    key = world["work"] / "allow-keys"
    build_snapshot(rows, tmp / name, key / "private.pem")
    return {"path": str(tmp / name), "public_key": str(key / "public.pem")}


def test_allow_list_hot_swap_and_a_refused_version(world, tmp_path):
    known = world["rows"]
    picture1 = [r for r in known if Path(r.note).name == "known-1.jpg"]
    allow = _allow_list(world, tmp_path, [r for r in known if Path(r.note).name == "known-0.jpg"])
    clock = FakeClock()
    live = AllowList(AllowListSettings(poll_seconds=10, **allow), MatchSettings(), clock)
    one = hash_image(Path(world["paths"][1]).read_bytes())
    assert live.version == 1 and live.matches(hash_image(Path(world["paths"][0]).read_bytes()))
    assert not live.matches(one)
    build_snapshot(picture1, tmp_path / "allow", world["work"] / "allow-keys" / "private.pem", base="latest")
    assert not live.due()
    clock.now += 10
    assert live.due() and live.refresh() and live.version == 2 and live.matches(one)
    controls = ProcessControls(AllowListSettings(poll_seconds=10, **allow), FloodGuardSettings(release_dir=None),
                               MatchSettings(), clock)
    assert controls.allow.version == 2
    generate_keypair(tmp_path / "intruder")
    build_snapshot(known, tmp_path / "allow", tmp_path / "intruder" / "private.pem")  # version 3, wrong key
    with pytest.raises(SnapshotError):
        live.refresh()
    assert live.version == 2 and live.matches(one)  # the last good version stays
    clock.now += 10
    controls.poll()  # a worker process's controls: the refused version is logged, never raised into an item
    assert controls.allow.version == 2 and controls.allow.matches(one)
    with pytest.raises(SnapshotError):  # and a new process cannot start on it
        AllowList(AllowListSettings(**allow), MatchSettings())


def test_a_bad_allow_list_stops_start_up_with_one_line(world, tmp_path):
    generate_keypair(tmp_path / "other")
    allow = _allow_list(world, tmp_path, world["rows"][:1])
    settings = _settings(world, tmp_path, allow_list=allow | {"public_key": str(tmp_path / "other" / "public.pem")})
    with pytest.raises(ConfigError) as exc:
        check_fp_controls(settings)
    assert str(exc.value).startswith(f"allow-list database {allow['path']}: ") and "\n" not in str(exc.value)
    check_fp_controls(_settings(world, tmp_path, allow_list=allow))  # the right key: loads
    missing = _settings(world, tmp_path, allow_list={"path": str(tmp_path / "nope"), "public_key": allow["public_key"]})
    with pytest.raises(ConfigError, match="allow-list database .*nope"):
        check_fp_controls(missing)


# ------------------------------------------------------------------------------ pipelines


def test_allow_listed_pictures_produce_no_report(world, tmp_path):
    """Picture 1 is on the allow-list whole (its digests): neither its copy nor a re-encoded copy
    is reported. Of picture 2 only the PDQ hash is allowed: a re-encoded copy (a PDQ match only)
    is not reported, the exact copy still is (its digests are known and not allowed)."""
    rows, paths, near = world["rows"], world["paths"], world["near"]
    allowed = [r for r in rows if Path(r.note).name == "known-1.jpg"]
    allowed += [r for r in rows if Path(r.note).name == "known-2.jpg" and r.kind == "pdq"]
    allow = _allow_list(world, tmp_path, allowed)
    settings = _settings(world, tmp_path, allow_list=allow)
    events = _events(tmp_path, {
        "e-known-0": Path(paths[0]).read_bytes(), "e-known-1": Path(paths[1]).read_bytes(), "e-near-1": near[1],
        "e-known-2": Path(paths[2]).read_bytes(), "e-near-2": near[2],
    })
    p, outs = _run(settings, events)
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["e-known-0", "e-known-2"]))
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["received"] == 5 and counts["hit"] == 2 and counts["non_hit"] == 3
    assert counts["fp_allow_listed_items"] == 3  # e-known-1, e-near-1, e-near-2
    # 4 matches of e-known-1 (its pdq and value-channel pdq rows, md5, sha256), the two pdq rows of each other
    assert counts["fp_allow_listed"] == 4 + 2 + 2 + 2
    reports = [json.loads(l) for f in glob.glob(str(tmp_path / "reports" / "*" / "*.jsonl")) for l in open(f)]
    by_event = {r["event_id"]: r for r in reports}
    assert {x["kind"] for x in by_event["e-known-2"]["matches"]} == {"md5", "sha256"}  # its PDQ match was allowed


def test_a_per_source_threshold_drops_a_far_match_the_global_one_accepts(world, tmp_path):
    """Pictures 1 and 2 re-encoded match at a few bits of PDQ distance, within the global 31;
    picture 2's indicators come from `strict-list`, whose threshold is 2 bits."""
    from csadetect.indicators.index import load_index

    index = load_index(world["work"] / "db", world["work"] / "keys" / "public.pem")
    far = [x.distance for x in index.match_image(hash_image(world["near"][2]))]
    assert far and min(far) > 2  # the premise: a far match the global threshold accepts
    events = _events(tmp_path, {"e-near-1": world["near"][1], "e-near-2": world["near"][2]})

    plain = _settings(world, tmp_path / "plain")
    p, outs = _run(plain, events)
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["e-near-1", "e-near-2"]))
    p.run().wait_until_finish()

    strict = _settings(world, tmp_path / "strict", match={"thresholds": {"by_source": {"strict-list": {"pdq": 2}}}})
    p, outs = _run(strict, events)
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["e-near-1"]))
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    # picture 2's pdq row and its value channel's pdq row, each a far match
    assert counts["fp_threshold_dropped"] == 2 and counts["non_hit"] == 1 and counts["hit"] == 1


def test_a_flooding_indicator_goes_to_review_with_an_alert(world, tmp_path, caplog):
    """Six uploads of picture 0 among four others: at the third, its indicators have 3 matches
    (min_matches), more than 20% of the items however the uploads are ordered: quarantined (one
    alert each), and that upload and the later ones go to review instead of straight to a report."""
    known = Path(world["paths"][0]).read_bytes()
    named = {f"e-flood-{i}": known for i in range(6)}
    named |= {f"e-miss-{i}": synth.jpeg_bytes(synth.synthetic_image(900 + i)) for i in range(4)}
    settings = _settings(world, tmp_path, flood_guard={"min_matches": 3, "share": 0.2, "window_seconds": 3600})
    p, outs = _run(settings, _events(tmp_path, named))
    assert_that(outs["reports"] | "CountReports" >> beam.combiners.Count.Globally(), equal_to([2]), label="Reports")
    assert_that(outs["review"] | beam.Map(lambda r: r["event_id"].startswith("e-flood-")), equal_to([True] * 4),
                label="Review")
    caplog.set_level(logging.WARNING, logger="csadetect.transforms.guard")
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["flood_quarantined"] == 4  # the picture's pdq (and its value channel's), md5 and sha256 indicators
    assert counts["flood_held"] == 4 and counts["report"] == 2 and counts["hit_review"] == 4
    assert counts["received"] == counts["hit"] + counts["non_hit"] + counts.get("dead_lettered", 0) == 10
    # the FnApiRunner runs its worker in this process: its log lines reach caplog
    alerts = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    ids = {r.indicator_id for r in world["rows"] if Path(r.note).name == "known-0.jpg"}
    assert sorted(a.split()[3] for a in alerts) == sorted(ids)  # one alert per indicator, naming it
    assert not any("e-flood" in r.getMessage() or "e-miss" in r.getMessage() for r in caplog.records)


def test_a_redelivered_event_is_queued_for_review_once(world, tmp_path):
    """Pub/Sub is at-least-once: the flooding picture's last upload delivered twice queues one review
    item (queued again after its verdict, it would go back to a reviewer with its evidence)."""
    known = Path(world["paths"][0]).read_bytes()
    named = {f"e-flood-{i}": known for i in range(6)}
    named |= {f"e-miss-{i}": synth.jpeg_bytes(synth.synthetic_image(900 + i)) for i in range(4)}
    events = Path(_events(tmp_path, named))
    events.write_text(events.read_text() + json.dumps(make_event("e-flood-5", known)) + "\n")  # the redelivery
    settings = _settings(world, tmp_path, flood_guard={"min_matches": 3, "share": 0.2, "window_seconds": 3600})
    p, outs = _run(settings, str(events))
    assert_that(outs["review"] | beam.Map(lambda r: r["event_id"]) | "Distinct" >> beam.Distinct()
                | "CountDistinct" >> beam.combiners.Count.Globally(), equal_to([4]), label="DistinctReview")
    assert_that(outs["review"] | "CountReview" >> beam.combiners.Count.Globally(), equal_to([4]), label="Review")
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["received"] == 11 and counts.get("duplicate_review_item", 0) + counts.get("duplicate_report", 0) == 1
    run = outs["run_id"]
    assert len(list((tmp_path / "review" / run).glob("*.parquet"))) == 4


# ------------------------------------------------------------------------------ the DoFn: release


IMAGE = []


def _matched(event_id: str, matches, version: int = 1) -> MatchedItem:
    event = Event(event_id=event_id, provider="p", service="photos", kind="image", occurred_at="2026-11-28T10:00:00Z",
                  account="acct", mime="image/jpeg")
    if not IMAGE:
        IMAGE.append(hash_image(synth.jpeg_bytes(synth.synthetic_image(5))))
    image = IMAGE[0]
    return MatchedItem(item=HashedItem(event=event, image=image), matches=tuple(matches), index_version=version)


def _route(fn, matched):
    out = list(fn.process(matched))
    assert len(out) == 1
    tag = getattr(out[0], "tag", None)
    return "review" if tag == REVIEW else "main"


def test_guard_holds_quarantined_matches_and_a_release_record_lifts_it(tmp_path, caplog):
    clock = FakeClock()
    flood = FloodGuardSettings(window_seconds=600, share=0.1, min_matches=2, release_dir=str(tmp_path / "rel"),
                               poll_seconds=5)
    fn = GuardMatchesFn(MatchSettings(), AllowListSettings(), flood, shared.Shared(), clock=clock)
    fn.setup()
    bad = [m("bad-md5", "md5")]
    caplog.set_level(logging.WARNING, logger="csadetect.transforms.guard")
    assert _route(fn, _matched("e1", bad)) == "main"  # 1 match: below min_matches
    assert _route(fn, _matched("e2", bad)) == "review"  # quarantined now: held
    assert [r.getMessage().split()[3] for r in caplog.records if "quarantined" in r.getMessage()] == ["bad-md5"]
    assert not any("e1" in r.getMessage() or "e2" in r.getMessage() for r in caplog.records)
    # another auto-confirming match that is not quarantined: confirmed as before
    assert _route(fn, _matched("e3", bad + [m("good-sha", "sha256")])) == "main"
    assert cli_main(["quarantine", "release", "bad-md5", "--dir", str(tmp_path / "rel")]) == 0
    assert _route(fn, _matched("e5", bad)) == "review"  # not polled yet
    clock.now += 5
    assert _route(fn, _matched("e6", bad)) == "main"  # released, counts cleared
    assert any("released by a release record" in r.getMessage() for r in caplog.records)
    assert _route(fn, _matched("e7", bad)) == "review"  # floods again
    assert _route(fn, _matched("e8", bad, version=2)) == "main"  # a new snapshot version lifts it


def test_guard_passes_dead_letters_and_items_without_matches(tmp_path):
    from csadetect.events.event import dead_letter

    fn = GuardMatchesFn(MatchSettings(), AllowListSettings(), FloodGuardSettings(release_dir=None), shared.Shared())
    fn.setup()
    letter = dead_letter("match", "match failed (ValueError)", "e0")
    assert list(fn.process(letter)) == [letter]
    item = _matched("e1", [])
    assert list(fn.process(item)) == [item]
