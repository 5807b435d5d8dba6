"""Loading TensorFlow models from a local path or a TF-Hub-style handle, and a RunInference
``ModelHandler`` for them (DESIGN §5).

Supported model specs (from config):

* ``path/to/model.keras`` — a Keras 3 model file (``keras.models.load_model``);
* ``path/to/saved_model_dir`` — a TensorFlow SavedModel (``tf.saved_model.load``; Keras 3 cannot
  load legacy SavedModels with ``load_model``), called through its ``serving_default`` signature
  or its ``__call__``;
* ``hub:path/or/handle`` — a TF-Hub module through ``tensorflow_hub.load`` (needs ``tf-keras``
  under TF 2.21). There is no internet at run time here, so a handle must resolve locally (a
  directory, or a handle already in ``TFHUB_CACHE_DIR``).

Any of them may sit on a Beam filesystem (``gs://...``, ``s3://...``, ``hdfs://...``, any scheme
registered with ``apache_beam.io.filesystems.FileSystems``): it is copied to a local cache first.
A missing or corrupt model raises :class:`ModelError` with one line saying what and where, at
start-up (``check_model``) rather than deep inside a worker.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from csadetect.models import ModelError


def is_remote(path) -> bool:
    """True for a Beam filesystem URL (``gs://``, ``s3://``, ``hdfs://``, any registered scheme)."""
    from csadetect.core.keys import is_url

    return path is not None and is_url(str(path))


def _local_copy(uri: str) -> str:
    """Beam filesystem URI (any scheme ``FileSystems`` knows) -> local path; a directory is copied
    recursively. Local paths pass. The copy is cached under the temp dir, keyed by the URI and the
    size and mtime of every file (a model replaced at the same URI is fetched again), and published
    with one atomic rename, so concurrent worker processes never load a half-copied model."""
    if not is_remote(uri):
        return uri
    import shutil

    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    base = uri.rstrip("/")
    name = base.rsplit("/", 1)[-1] or "model"
    try:
        matches = FileSystems.match([base + "/**", base])
    except Exception as exc:  # BeamIOError: unknown scheme, no credentials, ...
        raise ModelError(f"model {uri} cannot be listed ({type(exc).__name__})") from None
    found = {m.path: m for result in matches for m in result.metadata_list if not m.path.endswith("/")}
    if not found:
        raise ModelError(f"model not found: {uri}")
    listing = "\n".join(f"{p}\t{m.size_in_bytes}\t{m.last_updated_in_seconds}" for p, m in sorted(found.items()))
    key = hashlib.sha256(f"{uri}\n{listing}".encode()).hexdigest()[:16]
    root = os.path.join(tempfile.gettempdir(), "csadetect-models")
    cache = os.path.join(root, key)
    if os.path.isdir(cache):
        return os.path.join(cache, name)
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{key}-", dir=root)
    try:
        for path in sorted(found):
            rel = path[len(base):].lstrip("/") if path != base else ""
            dest = os.path.join(staging, name, *rel.split("/")) if rel else os.path.join(staging, name)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        try:
            os.rename(staging, cache)  # atomic; fails if another process published it first
        except OSError:
            if not os.path.isdir(cache):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(cache, name)


class LoadedModel:
    """A callable wrapper: ``model(batch) -> np.ndarray`` whatever the on-disk format."""

    def __init__(self, fn: Callable, spec: str, kind: str, raw: Any):
        self._fn = fn
        self.spec = spec
        self.kind = kind
        self.raw = raw

    def __call__(self, batch):
        out = self._fn(batch)
        if isinstance(out, dict):  # SavedModel signatures return a dict of outputs
            out = next(iter(out.values())) if len(out) == 1 else out
        return out.numpy() if hasattr(out, "numpy") else np.asarray(out)


def load_model(spec: str) -> LoadedModel:
    """Load a model from a path or handle (see module docstring). Raises ModelError."""
    if not spec:
        raise ModelError("no model configured")
    import tensorflow as tf

    hub = spec.startswith("hub:")
    target = spec[4:] if hub else spec
    try:
        path = _local_copy(target)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"model {spec} cannot be read ({type(exc).__name__})") from None
    if not hub and not os.path.exists(path):
        raise ModelError(f"model not found: {spec}")
    try:
        if hub:
            import tensorflow_hub

            module = tensorflow_hub.load(path)
            return LoadedModel(lambda x: module(x), spec, "hub", module)
        if path.endswith(".keras") or path.endswith(".h5"):
            import keras

            model = keras.models.load_model(path, compile=False)
            return LoadedModel(lambda x: model(x, training=False), spec, "keras", model)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
            obj = tf.saved_model.load(path)
            sig = getattr(obj, "signatures", {}).get("serving_default") if hasattr(obj, "signatures") else None
            if sig is not None:
                name = list(sig.structured_input_signature[1].keys())[0]
                return LoadedModel(lambda x: sig(**{name: tf.constant(x)}), spec, "saved_model", obj)
            return LoadedModel(lambda x: obj(x), spec, "saved_model", obj)
        if os.path.isdir(path):
            keras_files = sorted(f for f in os.listdir(path) if f.endswith(".keras"))
            if len(keras_files) == 1:
                return load_model(os.path.join(path, keras_files[0]))
        raise ModelError(f"model {spec}: not a .keras file, SavedModel directory or hub: handle")
    except ModelError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {spec} is corrupt or unreadable: {first}") from None


def check_model(spec: str, example: Optional[np.ndarray] = None) -> LoadedModel:
    """Load once at start-up (and optionally run one example) so a bad model fails fast."""
    model = load_model(spec)
    if example is not None:
        try:
            model(example)
        except Exception as exc:
            raise ModelError(f"model {spec} failed on an example input ({type(exc).__name__})") from None
    return model


class TFModelHandler(ModelHandler[np.ndarray, PredictionResult, LoadedModel]):
    """RunInference handler for our TensorFlow models: numpy examples in, batched, one model copy
    per worker process (RunInference's shared handle), swappable through ``update_model_path``
    (RunInference's ``model_metadata_pcoll`` side input, e.g. ``WatchFilePattern``)."""

    def __init__(
        self,
        model_uri: str,
        min_batch_size: int = 1,
        max_batch_size: int = 64,
        max_batch_duration_secs: Optional[int] = None,
        dtype: str = "float32",
    ):
        super().__init__()
        self._model_uri = model_uri
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        if max_batch_duration_secs:
            self._batching["max_batch_duration_secs"] = max_batch_duration_secs
        self._dtype = dtype

    @property
    def model_uri(self) -> str:
        return self._model_uri

    def load_model(self) -> LoadedModel:
        return load_model(self._model_uri)

    def update_model_path(self, model_path: Optional[str] = None):
        if model_path:
            self._model_uri = model_path

    def run_inference(
        self, batch: Sequence[np.ndarray], model: LoadedModel, inference_args: Optional[dict] = None
    ) -> Iterable[PredictionResult]:
        if self._dtype == "object":
            stacked = np.asarray(list(batch), dtype=object)
        else:
            stacked = np.stack([np.asarray(x, dtype=self._dtype) for x in batch])
        outputs = model(stacked)
        return [PredictionResult(x, y, model_id=self._model_uri) for x, y in zip(batch, outputs)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(getattr(x, "nbytes", 0) for x in batch)

    def batch_elements_kwargs(self):
        return dict(self._batching)

    def get_metrics_namespace(self) -> str:
        return "csadetect_inference"
