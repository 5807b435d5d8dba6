"""csadetect.models.loader: loading from a path or hub-style handle, the RunInference handler, and
the metadata checks every model goes through, on tiny models made here (no downloads)."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from csadetect.config.profiles import FN_API_RUNNER  # noqa: E402
from csadetect.models import ModelError  # noqa: E402
from csadetect.models.loader import REFERENCE_DIR, ModelKind, TFModelHandler, check_model, load_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
    model.save(root / "tiny.keras")

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return {"out": x * 2.0}

    mod = Doubler()
    tf.saved_model.save(mod, str(root / "saved"), signatures={"serving_default": mod.__call__})
    return root, model


def test_keras_file_loads_and_predicts(tiny):
    root, model = tiny
    loaded = load_model(str(root / "tiny.keras"))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x).numpy(), rtol=1e-5)
    assert loaded.kind == "keras"


def test_saved_model_and_hub_handle(tiny):
    root, _ = tiny
    x = np.ones((2, 4), dtype="float32")
    saved = load_model(str(root / "saved"))
    np.testing.assert_allclose(saved(x), 2 * x)
    hub = load_model("hub:" + str(root / "saved"))
    assert hub.kind == "hub"
    out = hub(tf.constant(x))
    np.testing.assert_allclose(out["out"] if isinstance(out, dict) else out, 2 * x)


def test_missing_and_corrupt_models_fail_with_one_line(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "nope.keras"))
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelError, match="corrupt") as info:
        check_model(str(bad))
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a .keras file"):
        load_model(str(empty))


def test_batched_equals_one_by_one_through_runinference(tiny):
    root, model = tiny
    xs = [np.random.default_rng(i).normal(size=4).astype("float32") for i in range(10)]
    expected = {i: model(x[None]).numpy()[0] for i, x in enumerate(xs)}
    handler = TFModelHandler(str(root / "tiny.keras"), min_batch_size=4, max_batch_size=4)

    def check(results):
        assert len(results) == 10
        for key, pred in results:
            np.testing.assert_allclose(pred.inference, expected[key], rtol=1e-5, atol=1e-6)

    with BeamTestPipeline(runner=FN_API_RUNNER) as p:
        keyed = p | beam.Create(list(enumerate(xs)))
        out = keyed | RunInference(KeyedModelHandler(handler))
        assert_that(out, check)


def test_update_model_path_swaps_model(tiny, tmp_path):
    root, _ = tiny
    keras.utils.set_random_seed(1)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(tmp_path / "v2.keras")
    handler = TFModelHandler(str(root / "tiny.keras"))
    handler.update_model_path(str(tmp_path / "v2.keras"))
    x = np.ones((1, 4), dtype="float32")
    np.testing.assert_allclose(handler.load_model()(x), other(x).numpy(), rtol=1e-5)


def _kind():
    def check(meta):
        if float(meta["threshold"]) > 1:
            raise ValueError("threshold above 1")

    return ModelKind("tiny", title="tiny classifier", required=("threshold",), check=check)


def test_model_kind_resolves_specs(tmp_path):
    kind = _kind()
    assert kind.path(None) == kind.reference == REFERENCE_DIR / "tiny"
    assert kind.path(str(tmp_path)) == tmp_path and kind.worker_path(tmp_path) == str(tmp_path)
    assert kind.worker_path(None) == str(REFERENCE_DIR / "tiny")
    assert kind.worker_path("gs://bucket/models/tiny") == "gs://bucket/models/tiny"  # each worker copies it


def test_model_kind_metadata_and_load_errors_are_one_line(tiny, tmp_path):
    root, model = tiny
    kind = _kind()
    d = tmp_path / "m"
    cases = [
        ("tiny classifier not found: " + str(d), None),
        ("tiny classifier metadata not found: " + str(d / "metadata.json"), "dir"),
        ("bad tiny model metadata " + str(d / "metadata.json") + ": ", "{broken"),
        ("bad tiny model metadata " + str(d / "metadata.json") + ": not a JSON object", "[1]"),
        ("bad tiny model metadata " + str(d / "metadata.json") + ": missing threshold", "{}"),
        ("bad tiny model metadata " + str(d / "metadata.json") + ": threshold above 1", '{"threshold": 2}'),
    ]
    for message, metadata in cases:
        if metadata is not None:
            d.mkdir(exist_ok=True)
            if metadata != "dir":
                (d / "metadata.json").write_text(metadata)
        for call in (kind.metadata, kind.load):
            with pytest.raises(ModelError) as info:
                call(d)
            assert str(info.value).startswith(message) and "\n" not in str(info.value)
    (d / "metadata.json").write_text('{"threshold": 0.5}')
    assert kind.metadata(d) == {"threshold": 0.5}
    with pytest.raises(ModelError, match=f"^tiny classifier not found: {d / 'model.keras'}$"):
        kind.load(d)
    (d / "model.keras").write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="^cannot load tiny model .*model.keras: corrupt or unreadable"):
        kind.load(d)
    (d / "model.keras").write_bytes((root / "tiny.keras").read_bytes())
    x = np.ones((2, 4), dtype="float32")
    for spec in (d, d / "model.keras", str(d)):
        loaded, metadata, path = kind.load(spec)
        assert metadata == {"threshold": 0.5} and path == Path(spec)
        np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x).numpy(), rtol=1e-5)


def test_tensorflow_start_up_noise_is_dropped_and_other_lines_kept(tmp_path):
    """import_tensorflow captures fd 2 around the import and device discovery: TensorFlow's known
    start-up lines go, anything else is written back; $CSADETECT_VERBOSE captures nothing."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os, types\n"
        "os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'a line that is not noise\\n')\n"
        "def _devices():\n"
        "    os.write(2, b'E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n')\n"
        "    return []\n"
        "config = types.SimpleNamespace(list_physical_devices=_devices)\n")
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
            "from csadetect.models.loader import import_tensorflow\n"
            "tf = import_tensorflow(); import_tensorflow(); print(tf.__name__)\n")
    env = {k: v for k, v in os.environ.items() if k != "CSADETECT_VERBOSE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tensorflow"
    assert out.stderr.splitlines() == ["a line that is not noise"]
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(env, CSADETECT_VERBOSE="1"))
    assert "oneDNN" in loud.stderr and "a line that is not noise" in loud.stderr
