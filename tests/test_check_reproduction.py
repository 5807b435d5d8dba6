"""training/check_reproduction.py: what `make models-check` compares (weights, decisions, demo pictures)."""
from __future__ import annotations

import json
import shutil

import pytest

from training import check_reproduction as cr

keras = pytest.importorskip("keras")


def _model_dir(path, threshold=0.99, bump=0.0, languages=None):
    keras.backend.clear_session()  # layer names restart, as in a fresh `make models` process
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="tiny")
    if bump:
        w, b = model.get_layer("d").get_weights()
        model.get_layer("d").set_weights([w + bump, b])
    path.mkdir(parents=True)
    model.save(path / "model.keras")
    meta = {"version": "x", "threshold": threshold, "training": {"date": str(path)},
            "threshold_provenance": {"date": str(path), "margin": 0.005}}
    if languages:
        meta["languages"] = languages
    (path / "metadata.json").write_text(json.dumps(meta))


def _tree(root, **kw):
    for name in cr.MODELS:
        _model_dir(root / name, **kw.get(name, {}))
    (root / "demo").mkdir()
    (root / "demo" / "a.jpg").write_bytes(kw.get("demo", b"picture"))
    return root


def test_identical_retraining_is_reproduced(tmp_path, capsys):
    shipped, retrained = _tree(tmp_path / "s"), _tree(tmp_path / "r")
    assert cr.check(shipped, retrained) == {"grooming": [], "embedding": [], "classifier": [], "demo": []}
    assert cr.main(["--shipped", str(shipped), "--retrained", str(retrained)]) == 0
    assert "this machine" not in capsys.readouterr().out


def test_weight_threshold_and_picture_differences_are_named(tmp_path, capsys):
    shipped = _tree(tmp_path / "s", grooming={"languages": {"fr": {"threshold": 0.8}}})
    retrained = _tree(tmp_path / "r", embedding={"bump": 1e-3}, classifier={"threshold": 0.98},
                      grooming={"languages": {"fr": {"threshold": 0.7}}}, demo=b"other")
    result = cr.check(shipped, retrained)
    assert any("weights differ" in p and "0.001 in layers/dense/vars/0" in p for p in result["embedding"]), result
    assert result["classifier"] == ["metadata threshold: shipped 0.99, retrained 0.98"]
    assert result["grooming"] == ["metadata languages.fr.threshold: shipped 0.8, retrained 0.7"]
    assert result["demo"] == ["a.jpg differs"]
    # a tolerance admits small weight differences, and only those
    assert cr.check(shipped, retrained, atol=1e-2)["embedding"] == []
    meta_path = shipped / "grooming" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["training"]["machine"] = "Some CPU (AVX2)"  # as the trainers record it since 2026-12-04
    meta_path.write_text(json.dumps(meta))
    assert cr.trained_on(shipped / "grooming") == "Some CPU (AVX2)" and cr.trained_on(tmp_path / "nowhere") is None
    assert cr.main(["--shipped", str(shipped), "--retrained", str(retrained)]) == 1
    out = capsys.readouterr().out
    assert "grooming   shipped model trained on: Some CPU (AVX2)" in out
    assert "embedding  shipped model trained on: not recorded" in out
    assert "embedding  DIFFERS: weights differ" in out
    assert f"this machine: {cr.machine()}; bit-identical retraining holds only" in out
    assert cr.machine() and "(" in cr.machine() or cr.machine() == "unknown CPU"


def test_missing_model_and_missing_folder(tmp_path, capsys):
    shipped, retrained = _tree(tmp_path / "s"), _tree(tmp_path / "r")
    shutil.rmtree(retrained / "classifier")
    assert cr.check(shipped, retrained)["classifier"] == [f"{retrained / 'classifier' / 'model.keras'} is missing"]
    assert cr.main(["--retrained", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
