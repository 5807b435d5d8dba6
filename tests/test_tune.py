"""`csadetect tune` (DESIGN §5): exact threshold choice, Wilson intervals, inputs, curves, config."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from csadetect.cli.tune import register
from csadetect.config.settings import load_settings
from csadetect.tuning.tune import TuneError, choose_threshold, pr_curve, read_examples, roc_curve, wilson

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tune_main(argv) -> int:
    """``csadetect tune ...`` through the command's own parser."""
    parser = argparse.ArgumentParser(prog="csadetect")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", "--quiet", *argv])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------------- threshold choice

S5 = [0.9, 0.8, 0.7, 0.6, 0.5]
Y5 = [1, 1, 0, 1, 0]  # precision at t: .9->1, .8->1, .7->2/3, .6->3/4, .5->3/5


@pytest.mark.parametrize("target, expected", [(1.0, 0.8), (0.75, 0.6), (0.7, 0.6), (0.6, 0.5), (0.0, 0.5)])
def test_precision_target_picks_lowest_qualifying_threshold(target, expected):
    r = choose_threshold(S5, Y5, target_precision=target)
    assert r["threshold"] == expected
    assert r["precision"] >= target


def test_precision_non_monotone_picks_lowest_not_first_crossing():
    # precision 0.75 is met at 0.9, 0.8 and again at 0.6 (after dipping at 0.7): 0.6 has the most recall
    r = choose_threshold(S5, Y5, target_precision=0.75)
    assert (r["tp"], r["fp"], r["fn"], r["tn"], r["n"]) == (3, 1, 0, 1, 5)
    assert r["recall"] == 1.0 and r["fpr"] == 0.5


def test_ties_are_never_split():
    scores, labels = [0.9, 0.8, 0.8, 0.5], [1, 1, 0, 0]
    r = choose_threshold(scores, labels, target_precision=1.0)
    assert r["threshold"] == 0.9 and (r["tp"], r["fp"]) == (1, 0)
    r = choose_threshold(scores, labels, target_precision=0.6)
    assert r["threshold"] == 0.8 and (r["tp"], r["fp"]) == (2, 1)


@pytest.mark.parametrize("target, expected", [(0.0, 0.8), (0.49, 0.8), (0.5, 0.6), (1.0, 0.5)])
def test_fpr_target(target, expected):
    r = choose_threshold(S5, Y5, target_fpr=target)
    assert r["threshold"] == expected
    assert r["fpr"] <= target


def test_separated_gaussians_precision_one_at_the_gap():
    rng = np.random.default_rng(0)
    neg = rng.normal(0.0, 0.5, 2000)
    pos = rng.normal(10.0, 0.5, 500)
    scores = np.r_[neg, pos]
    labels = np.r_[np.zeros(neg.size), np.ones(pos.size)]
    r = choose_threshold(scores, labels, target_precision=1.0)
    assert r["threshold"] == pos.min()
    assert (r["precision"], r["recall"], r["fpr"]) == (1.0, 1.0, 0.0)
    assert r["tp"] == 500 and r["tn"] == 2000


def test_matches_brute_force_on_random_data_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(5, 60))
        scores = rng.integers(0, 12, n) / 10.0  # many ties
        labels = rng.random(n) < 0.4
        if labels.all() or not labels.any():
            continue
        for p in (0.3, 0.5, 0.7, 0.9):
            ok = [t for t in np.unique(scores)
                  if labels[scores >= t].sum() / (scores >= t).sum() >= p]
            if not ok:
                with pytest.raises(TuneError):
                    choose_threshold(scores, labels, target_precision=p)
            else:
                assert choose_threshold(scores, labels, target_precision=p)["threshold"] == min(ok)
        for f in (0.0, 0.2, 0.5):
            ok = [t for t in np.unique(scores) if (~labels & (scores >= t)).sum() / (~labels).sum() <= f]
            if not ok:
                with pytest.raises(TuneError):
                    choose_threshold(scores, labels, target_fpr=f)
            else:
                assert choose_threshold(scores, labels, target_fpr=f)["threshold"] == min(ok)


def test_unreachable_precision_says_best_achievable():
    with pytest.raises(TuneError, match=r"best achievable is 0\.5000"):
        choose_threshold([0.9, 0.5, 0.4], [0, 1, 0], target_precision=0.9)


def test_unreachable_fpr():
    with pytest.raises(TuneError, match="FPR"):
        choose_threshold([0.9, 0.5], [0, 1], target_fpr=0.0)


def test_needs_both_classes_and_one_target():
    with pytest.raises(TuneError, match="no positive"):
        choose_threshold([0.1, 0.2], [0, 0], target_precision=0.5)
    with pytest.raises(TuneError, match="no negative"):
        choose_threshold([0.1, 0.2], [1, 1], target_precision=0.5)
    with pytest.raises(TuneError):
        choose_threshold(S5, Y5)
    with pytest.raises(TuneError):
        choose_threshold(S5, Y5, target_precision=0.5, target_fpr=0.1)


def test_curves():
    precision, recall, thr = pr_curve(S5, Y5)
    assert list(thr) == S5
    np.testing.assert_allclose(precision, [1, 1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(recall, [1 / 3, 2 / 3, 2 / 3, 1, 1])
    fpr, tpr, thr = roc_curve(S5, Y5)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, recall)


# ------------------------------------------------------------------------------------ Wilson

def test_wilson_known_values():
    np.testing.assert_allclose(wilson(8, 10), (0.4902, 0.9433), atol=5e-4)
    np.testing.assert_allclose(wilson(0, 10), (0.0, 0.2775), atol=5e-4)
    np.testing.assert_allclose(wilson(10, 10), (0.7225, 1.0), atol=5e-4)
    np.testing.assert_allclose(wilson(50, 100), (0.4038, 0.5962), atol=5e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_result_carries_wilson_intervals():
    r = choose_threshold(S5, Y5, target_precision=0.75)
    assert r["precision_ci95"] == list(wilson(3, 4))
    assert r["recall_ci95"] == list(wilson(3, 3))


# ------------------------------------------------------------------------------- CLI and I/O

def _rows():
    rng = np.random.default_rng(2)
    neg = rng.uniform(0.0, 0.6, 300)
    pos = rng.uniform(0.4, 1.0, 100)
    return np.r_[neg, pos], np.r_[np.zeros(300, bool), np.ones(100, bool)]


def test_parquet_and_jsonl_round_trip(tmp_path, capsys):
    scores, labels = _rows()
    pq.write_table(pa.table({"p": scores, "truth": labels}), tmp_path / "eval.parquet")
    with open(tmp_path / "eval.jsonl", "w") as fh:
        for s, y in zip(scores, labels):
            fh.write(json.dumps({"p": float(s), "truth": "confirmed" if y else "manifestly_unfounded"}) + "\n")
    expected = choose_threshold(scores, labels, target_precision=0.9)
    for name in ("eval.parquet", "eval.jsonl"):
        rc, out, err = run_cli(["--scores", str(tmp_path / name), "--target-precision", "0.9",
                                "--score-column", "p", "--label-column", "truth"], capsys)
        assert rc == 0, err
        assert len(out.strip().splitlines()) == 1
        got = json.loads(out)
        for key in ("threshold", "precision", "recall", "fpr", "tp", "fp", "fn", "tn", "n"):
            assert got[key] == expected[key], key
        assert got["n"] == 400 and got["precision"] >= 0.9
        assert "threshold" in err


def test_label_forms(tmp_path):
    path = tmp_path / "x.jsonl"
    rows = [{"score": 0.1, "label": 0}, {"score": 0.2, "label": True}, {"score": "0.3", "label": "false"},
            {"score": 0.4, "label": "1"}, {"score": 0.5, "label": "Confirmed"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores, labels = read_examples(path)
    assert list(scores) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert list(labels) == [False, True, False, True, True]


def test_curves_written_default_and_custom_dir(tmp_path, capsys):
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps({"score": s, "label": y}) + "\n" for s, y in zip(S5, Y5)))
    rc, _, err = run_cli(["--scores", str(path), "--target-fpr", "0.5"], capsys)
    assert rc == 0, err
    for suffix in ("pr", "roc"):
        png = tmp_path / f"scores-{suffix}.png"
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
    out_dir = tmp_path / "curves"
    rc, out, err = run_cli(["--scores", str(path), "--target-fpr", "0.5", "--curves-dir", str(out_dir)], capsys)
    assert rc == 0, err
    assert (out_dir / "scores-pr.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads(out)["curves"]["roc"] == str(out_dir / "scores-roc.png")


def test_write_config_keeps_other_keys_and_records_provenance(tmp_path, capsys):
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps({"score": s, "label": y}) + "\n" for s, y in zip(S5, Y5)))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"match": {"pdq_threshold": 20},
                                   "grooming": {"enabled": True, "threshold": 0.99}}))
    rc, _, err = run_cli(["--scores", str(path), "--target-precision", "0.75", "--write-config", str(cfg),
                          "--config-key", "grooming.threshold", "--detector", "grooming-text",
                          "--model-version", "ref-1"], capsys)
    assert rc == 0, err
    data = yaml.safe_load(cfg.read_text())
    assert data["match"] == {"pdq_threshold": 20}
    assert data["grooming"]["enabled"] is True
    assert data["grooming"]["threshold"] == 0.6
    prov = data["grooming"]["threshold_provenance"]
    import hashlib
    assert prov["dataset"] == str(path)
    assert prov["dataset_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["n"] == 5 and prov["target"] == {"precision": 0.75}
    assert prov["precision"] == 0.75 and prov["recall"] == 1.0
    assert prov["model_version"] == "ref-1"
    assert prov["chosen_at"].endswith("Z") and prov["chosen_at"][10] == "T"

    new = tmp_path / "sub" / "new.yaml"  # created when absent, nested key made
    rc, _, err = run_cli(["--scores", str(path), "--target-fpr", "0.0", "--write-config", str(new),
                          "--config-key", "embedding.threshold", "--detector", "known-embedding"], capsys)
    assert rc == 0, err
    data = yaml.safe_load(new.read_text())
    assert data["embedding"]["threshold"] == 0.8
    assert data["embedding"]["threshold_provenance"]["target"] == {"fpr": 0.0}


@pytest.mark.parametrize("content, extra, message", [
    (None, [], "not found"),
    ('{"score": 0.5}\n', [], "missing column(s) label"),
    ('{"score": "high", "label": 1}\n', [], "not a number"),
    ('{"score": 0.5, "label": "maybe"}\n', [], "label must be"),
    ('{"score": 0.5, "label": 1}\n{"score": 0.4, "label": 1}\n', [], "no negative"),
    ('{"score": 0.5, "label": 0}\n{"score": 0.4, "label": 0}\n', [], "no positive"),
    ('{"score": 0.9, "label": 0}\n{"score": 0.4, "label": 1}\n', [], "best achievable"),
    ("not json\n", [], "line 1: not valid JSON"),
])
def test_bad_inputs_give_one_line_and_nonzero_exit(tmp_path, capsys, content, extra, message):
    path = tmp_path / "s.jsonl"
    if content is not None:
        path.write_text(content)
    rc, out, err = run_cli(["--scores", str(path), "--target-precision", "0.8", *extra], capsys)
    assert rc != 0
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_parquet_missing_column_and_bad_extension(tmp_path, capsys):
    pq.write_table(pa.table({"score": [0.1, 0.9]}), tmp_path / "s.parquet")
    rc, _, err = run_cli(["--scores", str(tmp_path / "s.parquet"), "--target-precision", "0.8"], capsys)
    assert rc != 0 and "missing column(s) label" in err
    (tmp_path / "s.csv").write_text("score,label\n")
    rc, _, err = run_cli(["--scores", str(tmp_path / "s.csv"), "--target-precision", "0.8"], capsys)
    assert rc != 0 and "unsupported extension" in err


def test_target_is_required_and_exclusive(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--scores", "x.jsonl"])
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--scores", "x.jsonl", "--target-precision", "0.9", "--target-fpr", "0.1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--scores", "x.jsonl", "--target-precision", "1.5"])


def test_tuned_config_loads_in_settings(tmp_path):
    """A config written by `tune --write-config` is accepted by the pipeline's settings."""
    import json as _json

    scores = tmp_path / "s.jsonl"
    scores.write_text("".join(_json.dumps({"score": s / 10, "label": int(s >= 5)}) + "\n" for s in range(10)))
    cfg = tmp_path / "tuned.yaml"
    rc = tune_main(["tune", "--scores", str(scores), "--target-precision", "0.9", "--write-config", str(cfg),
                    "--config-key", "grooming.threshold", "--detector", "grooming-text",
                    "--curves-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    settings = load_settings(str(cfg))
    assert settings.grooming.threshold == 0.5
    assert settings.grooming.threshold_provenance["dataset_sha256"]


def test_tuned_new_material_threshold_loads_in_settings(tmp_path):
    """Data teams tune the new-material review threshold the same way (provenance beside it)."""
    import json as _json

    scores = tmp_path / "s.jsonl"
    scores.write_text("".join(_json.dumps({"score": s / 10, "label": int(s >= 7)}) + "\n" for s in range(10)))
    cfg = tmp_path / "tuned.yaml"
    rc = tune_main(["tune", "--scores", str(scores), "--target-precision", "0.9", "--write-config", str(cfg),
                    "--config-key", "new_material.review_threshold", "--detector", "new-material-classifier",
                    "--curves-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    settings = load_settings(str(cfg))
    assert settings.new_material.review_threshold == 0.7
    assert settings.new_material.review_threshold_provenance["dataset_sha256"]


# ------------------------------------------------- --write-config: the key exists and fits the scores


def _scores_file(tmp_path, detector=None, name="s.jsonl"):
    path = tmp_path / name
    rows = [{"score": s, "label": y, **({"detector": detector} if detector else {})} for s, y in zip(S5, Y5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _refused(tmp_path, capsys, argv, message):
    cfg = tmp_path / "out.yaml"
    rc, out, err = run_cli(["--target-precision", "0.75", "--write-config", str(cfg), *argv], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not cfg.exists()  # nothing written
    return err


def test_write_config_needs_a_config_key(tmp_path, capsys):
    """The old default wrote grooming.threshold whatever had scored the examples."""
    path = _scores_file(tmp_path, "new-material-classifier")
    err = _refused(tmp_path, capsys, ["--scores", str(path)], "--write-config needs --config-key")
    assert "new_material.review_threshold" in err


@pytest.mark.parametrize("key, message", [
    ("new_material.review_treshold", "is not a key of the settings schema (did you mean new_material.review_threshold?)"),
    ("newmaterial.review_threshold", "(did you mean new_material.review_threshold?)"),
    ("match.pdq_threshold", "'match.pdq_threshold' is not a score threshold"),
    ("models.a.threshold", "is not a key of the settings schema"),
])
def test_a_misspelt_or_untunable_key_is_refused_with_the_nearest(tmp_path, capsys, key, message):
    path = _scores_file(tmp_path, "new-material-classifier")
    _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", key], message)


def test_classifier_scores_never_become_the_grooming_threshold(tmp_path, capsys):
    path = _scores_file(tmp_path, "new-material-classifier")
    err = _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", "grooming.threshold"],
                   "grooming.threshold is the grooming-text threshold, but these are new-material-classifier scores")
    assert "use --config-key new_material.review_threshold or new_material.report_threshold" in err
    # --detector cannot overrule the file's own column
    _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", "grooming.threshold", "--detector",
                                "grooming-text"], "holds new-material-classifier scores, not grooming-text")


def test_scores_without_a_detector_column_need_detector(tmp_path, capsys):
    path = _scores_file(tmp_path)
    _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", "grooming.threshold"],
             "--detector grooming-text")
    _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", "grooming.threshold", "--detector",
                                "known-embedding"], "these are known-embedding scores: use --config-key embedding.threshold")


def test_scores_of_two_detectors_are_refused(tmp_path, capsys):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"score": 0.9, "label": 1, "detector": "known-embedding"}) + "\n"
                    + json.dumps({"score": 0.1, "label": 0, "detector": "known-hash"}) + "\n")
    _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", "embedding.threshold"],
             "scores of 2 detectors (known-embedding, known-hash)")


def test_a_threshold_the_settings_refuse_is_not_written(tmp_path, capsys):
    """report_threshold below the (default) review threshold 0.9341 would make the config invalid."""
    path = _scores_file(tmp_path, "new-material-classifier")
    _refused(tmp_path, capsys, ["--scores", str(path), "--config-key", "new_material.report_threshold"],
             "report_threshold must be >= review_threshold")


def test_detector_column_of_feedback_examples_is_enough(tmp_path, capsys):
    """Feedback's labelled examples carry `detector`: no --detector needed; Parquet too."""
    for name in ("examples-new.jsonl", "examples-new.parquet"):
        if name.endswith(".parquet"):
            path = tmp_path / name
            pq.write_table(pa.table({"score": S5, "label": Y5, "detector": ["new-material-classifier"] * 5}), path)
        else:
            path = _scores_file(tmp_path, "new-material-classifier", name)
        cfg = tmp_path / f"{name}.yaml"
        rc, out, err = run_cli(["--scores", str(path), "--target-precision", "0.75", "--write-config", str(cfg),
                                "--config-key", "new_material.review_threshold"], capsys)
        assert rc == 0, err
        assert json.loads(out)["config"] == {"path": str(cfg), "key": "new_material.review_threshold"}
        assert load_settings(str(cfg)).new_material.review_threshold == 0.6


def test_config_key_without_write_config_is_refused(tmp_path, capsys):
    path = _scores_file(tmp_path, "grooming-text")
    rc, out, err = run_cli(["--scores", str(path), "--target-precision", "0.75", "--config-key",
                            "grooming.threshold"], capsys)
    assert rc == 2 and out == "" and "--config-key needs --write-config" in err


def test_a_file_as_curves_dir_is_one_line_not_a_traceback(tmp_path, capsys):
    path = _scores_file(tmp_path)
    in_the_way = tmp_path / "curves"
    in_the_way.write_text("keep\n")
    rc, out, err = run_cli(["--scores", str(path), "--target-precision", "0.75", "--curves-dir", str(in_the_way)],
                           capsys)
    assert rc == 1 and out == "" and err == f"error: {in_the_way}: File exists\n"
    assert in_the_way.read_text() == "keep\n"


@pytest.mark.parametrize("kind, message", [("dir", "is a directory: give the YAML file"),
                                           ("binary", "is not UTF-8 text (YAML)")])
def test_write_config_that_is_a_directory_or_not_text_is_one_line(tmp_path, capsys, kind, message):
    path = _scores_file(tmp_path, "new-material-classifier")
    target = tmp_path / "target"
    if kind == "dir":
        target.mkdir()
    else:
        target.write_bytes(b"\xff\xfe\x00binary")
    rc, out, err = run_cli(["--scores", str(path), "--target-precision", "0.75", "--write-config", str(target),
                            "--config-key", "new_material.review_threshold"], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert target.is_dir() if kind == "dir" else target.read_bytes() == b"\xff\xfe\x00binary"
