"""`csadetect hash`, `csadetect run` and `csadetect demo` from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from csadetect.media import synth
from csadetect.cli.main import main
from tests.conftest import need_shared
from tests.test_readme import readme_demo_mismatches

REPO = Path(__file__).resolve().parent.parent


def test_hash_prints_one_json_line_per_image(tmp_path, capsys):
    a = tmp_path / "a.jpg"
    a.write_bytes(synth.jpeg_bytes(synth.synthetic_image(1)))
    b = tmp_path / "b.png"
    b.write_bytes(synth.png_bytes(synth.synthetic_image(2)))
    assert main(["hash", str(a), str(b)]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [l["path"] for l in lines] == [str(a), str(b)]
    for line in lines:
        assert set(line) == {"path", "pdq", "quality", "md5", "sha256"}
        assert len(line["pdq"]) == 64 and len(line["md5"]) == 32 and len(line["sha256"]) == 64
        int(line["pdq"], 16)


def test_hash_reference_image_matches_expected():
    img = need_shared("pdq", "reg-test-input", "dih", "bridge-1-original.jpg")
    out = subprocess.run([sys.executable, "-m", "csadetect", "hash", str(img)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["pdq"]
    ref = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"
    assert bin(int(got, 16) ^ int(ref, 16)).count("1") <= 10


def test_hash_video(tmp_path, capsys):
    video = synth.synthetic_video(5, tmp_path / "v.mp4", seconds=2)
    if video is None:
        pytest.skip("ffmpeg CLI not installed")
    assert main(["hash", str(video)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert set(line) == {"path", "md5", "sha256", "vpdq"}
    assert line["vpdq"] and set(line["vpdq"][0]) == {"frame", "quality", "pdq", "timestamp"}


def test_hash_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = tmp_path / "good.jpg"
    good.write_bytes(synth.jpeg_bytes(synth.synthetic_image(3)))
    rc = main(["hash", str(bad), str(tmp_path / "missing.jpg"), str(good)])
    out = capsys.readouterr()
    assert rc == 1
    assert len(out.out.splitlines()) == 1  # the good file is still hashed
    errors = out.err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)


def test_hash_unreadable_video_is_one_line_with_vpdqs_reason(tmp_path):
    """vpdq's C++ writes its reason to descriptor 2 around Python: it becomes the error line's
    reason instead of a second line (a subprocess: capsys does not see descriptor 2)."""
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are notes, not a video\n")
    out = subprocess.run([sys.executable, "-m", "csadetect", "hash", str(fake)], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {fake}: unreadable video (")
    assert line != f"error: {fake}: unreadable video (Exception)"


def test_run_refuses_missing_indicator_db_with_one_line(tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text("{}\n")
    out = subprocess.run(
        [sys.executable, "-m", "csadetect", "run", "--input_glob", str(events), "--indicators", str(tmp_path / "nope"),
         "--public_key", str(tmp_path / "nope.pem")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: indicator database")
    assert "Traceback" not in out.stderr


def test_run_refuses_two_inputs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "csadetect", "run", "--input_glob", "a", "--input_media_glob", "b"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 2 and "exactly one input" in out.stderr


def test_demo_end_to_end(tmp_path, capsys):
    """The whole path: hit -> review -> signed report -> Centre verdict -> precision -> transparency."""
    from csadetect.reports import crypto
    from csadetect.demo import CENTRE_UNFOUNDED, PROVIDER_REJECTS
    from csadetect.demo import main as demo_main

    rc = demo_main(["--workdir", str(tmp_path / "demo"), "--out", str(tmp_path / "out")])
    assert rc == 0
    summary = capsys.readouterr().out
    assert "[OK]" in summary
    # the README's summary block is what the demo prints (tests/test_readme.py)
    assert readme_demo_mismatches(summary, str(tmp_path / "out")) == []
    out = tmp_path / "out"
    info = json.loads((tmp_path / "demo" / "demo.json").read_text())
    # each store holds the run's records one level down, in the run's directory (csadetect.core.runs)
    reports = [json.loads(l) for f in (out / "reports").rglob("*.jsonl") for l in f.open()]
    confirmed = {r.get("conversation_id") or r["event_id"]: r for r in reports if r["review_status"] == "confirmed"}
    auto = [r["event_id"] for r in reports if r["review_status"] == "auto_confirmed"]
    assert sorted(auto) == sorted(info["expected_hits"])
    reviewed = sorted(e for e in info["expected_review"] if e not in PROVIDER_REJECTS) + ["conv-risk"]
    assert sorted(confirmed) == sorted(reviewed)
    assert confirmed["conv-risk"]["detection_type"] == "grooming" and confirmed["conv-risk"]["risk_patterns"]
    assert confirmed["evt-known-0-cropped"]["detector"] == "known-embedding"
    for r in reports:
        crypto.verify_report(r, info["provider_public_key"])
        assert crypto.open_evidence(r, info["centre_private_key"])[1]
        assert r["order_id"] == "DEMO-ORDER-2026-1"
    assert list((out / "review").rglob("*.parquet")) == []  # every item decided
    dead = [json.loads(l) for f in (out / "dead_letters").rglob("*.jsonl") for l in f.open()]
    assert len(dead) == info["n_malformed"]
    precision = {r["detector"]: r for f in (out / "feedback").rglob("precision-*.jsonl") for r in map(json.loads, f.open())}
    assert precision["known-hash"]["precision"] == 1.0
    assert precision["new-material-classifier"]["manifestly_unfounded"] == len(CENTRE_UNFOUNDED)
    assert "ALERT new-material-classifier" in summary and "precision" in summary
    assert (out / "transparency" / "transparency.html").exists() and (out / "transparency" / "transparency.pdf").exists()
    notifications = [json.loads(l) for f in (out / "notifications").rglob("*.jsonl") for l in f.open()]
    assert any(n["trigger"] == "manifestly_unfounded" for n in notifications)
    everything = json.dumps(reports + dead) + "".join(
        p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".html"))
    assert "evt-other" not in everything  # incl. the hard negative evt-other-parts-*
    for rejected in PROVIDER_REJECTS:
        assert rejected not in everything
    assert "conv-family" not in everything and "birthday surprise" not in everything


def test_version_names_the_installed_distribution(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"csadetect {importlib.metadata.version('csadetect')}"


def test_missing_report_key_names_the_right_keygen_command(tmp_path):
    from csadetect.config.settings import ConfigError, load_settings
    from csadetect.pipelines.detect import check_report_keys

    settings = load_settings(overrides={"reports": {"signing_key": str(tmp_path / "nope" / "private.pem")}})
    with pytest.raises(ConfigError, match="csadetect review keygen --out KEYDIR") as err:
        check_report_keys(settings)
    assert "\n" not in str(err.value) and "reports keygen" not in str(err.value).replace("reports centre-keygen", "")
