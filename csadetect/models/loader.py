"""The one model loader (DESIGN §5): where a model is, copying it from a Beam filesystem, checking
its ``metadata.json``, loading it, and the RunInference handlers that run it.

The three models (``embedding``, the new-material ``classifier``, ``grooming``) are each stored as
a directory holding ``model.keras`` and ``metadata.json``. Each model module declares its
:class:`ModelKind` (reference directory, required metadata keys and their check) and calls it; a
model spec (the settings ``embedding.model``, ``new_material.model``, ``grooming.model``, or a
``--model`` flag) is then

* None: the reference model shipped in the package, ``csadetect/models/reference/<name>``;
* a directory, or its ``model.keras`` file (the metadata next to it);
* either of them on a Beam filesystem (``gs://...``, ``s3://...``, ``hdfs://...``, any scheme
  registered with ``apache_beam.io.filesystems.FileSystems``): copied to a local cache first
  (:func:`_local_copy`). A pipeline hands the URL itself to its workers (``worker_path``), and
  each worker copies it: the launcher's cache path would not exist on a Dataflow or Flink worker.

:func:`load_model` loads other TensorFlow formats too, for a model without our metadata:

* ``path/to/model.keras`` — a Keras 3 model file (``keras.saving.load_model``);
* ``path/to/saved_model_dir`` — a TensorFlow SavedModel (``tf.saved_model.load``; Keras 3 cannot
  load legacy SavedModels with ``load_model``), called through its ``serving_default`` signature
  or its ``__call__``;
* ``hub:path/or/handle`` — a TF-Hub module through ``tensorflow_hub.load`` (needs ``tf-keras``
  under TF 2.20). There is no internet at run time here, so a handle must resolve locally (a
  directory, or a handle already in ``TFHUB_CACHE_DIR``).

A missing or corrupt model raises :class:`~csadetect.models.ModelError` with one line saying what
and where, at start-up rather than deep inside a worker. :class:`BatchedModelHandler` is what every
RunInference handler here shares (the model's path, swappable; batching; metrics namespace):
``transforms.embed`` and ``transforms.classify`` subclass it for their models, and
:class:`TFModelHandler` runs any model :func:`load_model` reads on numpy examples.

TensorFlow is imported in one place, :func:`import_tensorflow`: its C++ runtime writes start-up
notices straight to file descriptor 2 (oneDNN, "Could not find cuda drivers", "failed call to
cuInit" on a machine without a GPU), which environment variables do not silence. The import and
the device discovery run with fd 2 captured; what is known noise is dropped, anything else is
written back, and everything captured is shown when the import fails. ``csadetect --verbose``
(``$CSADETECT_VERBOSE``) leaves stderr alone.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ExampleT, ModelHandler, ModelT, PredictionResult, PredictionT

from csadetect.config.flags import VERBOSE_ENV
from csadetect.core import fs
from csadetect.core.fd2 import captured_fd2
from csadetect.models import ModelError

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for an operator: its message, else its type's name."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def is_remote(path) -> bool:
    """True for a Beam filesystem URL (``gs://``, ``s3://``, ``hdfs://``, any registered scheme)."""
    return path is not None and fs.is_url(str(path))


def _local_copy(uri: str) -> str:
    """Beam filesystem URI (any scheme ``FileSystems`` knows) -> local path; a directory is copied
    recursively. Local paths pass. The copy is cached under the temp dir, keyed by the URI and the
    size and mtime of every file (a model replaced at the same URI is fetched again), and published
    with one atomic rename, so concurrent worker processes never load a half-copied model."""
    if not is_remote(uri):
        return uri
    base = uri.rstrip("/")
    name = base.rsplit("/", 1)[-1] or "model"
    try:
        found = {m.path: m for pattern in (base + "/**", base) for m in fs.match(pattern) if not m.path.endswith("/")}
    except Exception as exc:  # BeamIOError: unknown scheme, no credentials, ...
        raise ModelError(f"model {uri} cannot be listed ({type(exc).__name__})") from None
    if not found:
        raise ModelError(f"model not found: {uri}")
    listing = "\n".join(f"{p}\t{m.size_in_bytes}\t{m.last_updated_in_seconds}" for p, m in sorted(found.items()))
    key = hashlib.sha256(f"{uri}\n{listing}".encode()).hexdigest()[:16]
    sources = {}
    for path in found:
        rel = path[len(base):].lstrip("/") if path != base else ""
        sources[f"{name}/{rel}" if rel else name] = path
    return os.path.join(fs.local_copy(sources, os.path.join(tempfile.gettempdir(), "csadetect-models"), key), name)


def _unreadable(what: str, where, exc: BaseException) -> ModelError:
    reason = " ".join(str(exc).split())
    detail = f"{type(exc).__name__}: {one_line(exc, 160)}" if reason else type(exc).__name__
    return ModelError(f"cannot load {what} {where}: corrupt or unreadable ({detail})")


# What TensorFlow's runtime prints while it starts on a machine without a GPU: not errors.
TF_NOISE = re.compile(
    r"cuInit|cuda drivers|cudart_stub|cuda_platform|oneDNN|TF_ENABLE_ONEDNN_OPTS|absl::InitializeLog"
    r"|cpu_feature_guard|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler flags"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation_placer|TF-TRT Warning"
)


def import_tensorflow():
    """``tensorflow``, imported and its devices discovered with TensorFlow's start-up noise kept
    off stderr (module docstring); lines that are not noise are written back. With
    ``$CSADETECT_VERBOSE`` (``csadetect --verbose``) nothing is captured and ``TF_CPP_MIN_LOG_LEVEL``
    is not set. When the import fails, everything captured is shown before the error propagates."""
    if "tensorflow" in sys.modules and getattr(import_tensorflow, "done", False):
        return sys.modules["tensorflow"]
    if os.environ.get(VERBOSE_ENV):  # its log level left alone too: TensorFlow's notices are INFO lines
        import tensorflow as tf

        import_tensorflow.done = True
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    failure: Optional[BaseException] = None
    with captured_fd2() as captured:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA platform starts here (cuInit)
        except BaseException as exc:  # shown with what TensorFlow printed, below
            failure = exc
    text = "".join(captured)
    kept = text if failure else "".join(line for line in text.splitlines(keepends=True) if not TF_NOISE.search(line))
    if kept:
        sys.stderr.write(kept if kept.endswith("\n") else kept + "\n")
        sys.stderr.flush()
    if failure is not None:
        raise failure
    import_tensorflow.done = True
    return tf


def load_keras(path, what: str = "model"):
    """A Keras 3 model file, uncompiled (inference only). Raises ModelError naming ``what``."""
    import_tensorflow()  # Keras 3 runs on TensorFlow here: start it quietly first
    import keras

    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # corrupt archive, wrong format, unknown layers ...
        raise _unreadable(what, path, exc) from None


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One of the project's models as stored: a directory with ``model.keras`` and ``metadata.json``.

    ``name``: its reference directory (``reference/<name>``), and what errors about its files call
    it (``<name> model``); ``title``: what a missing one is called (default ``<name> model``);
    ``required``: the metadata keys it needs; ``check(metadata)`` raises ValueError or TypeError
    for a bad value."""

    name: str
    title: str = ""
    required: tuple[str, ...] = ()
    check: Optional[Callable[[dict], None]] = None

    def __post_init__(self):
        if not self.title:
            object.__setattr__(self, "title", f"{self.name} model")

    @property
    def reference(self) -> Path:
        """The reference model shipped in the package."""
        return REFERENCE_DIR / self.name

    def path(self, spec=None) -> Path:
        """Local path of a model spec: the reference model for None; a Beam filesystem URL is
        copied to the local cache first."""
        if not spec:
            return self.reference
        return Path(_local_copy(str(spec))) if is_remote(spec) else Path(spec)

    def worker_path(self, spec=None) -> str:
        """The spec as a pipeline hands it to its workers: a remote model keeps its URL (each worker
        copies it), a local one becomes its path."""
        return str(spec) if is_remote(spec) else str(self.path(spec))

    def metadata(self, spec=None) -> dict:
        """The model's checked ``metadata.json``, without loading TensorFlow (start-up checks, the
        launcher of a Dataflow job). Raises ModelError."""
        return self._read(self.path(spec))[1]

    def load(self, spec=None) -> tuple[Any, dict, Path]:
        """``(keras model, metadata, local path)``. Raises ModelError with a one-line reason."""
        path = self.path(spec)
        model_file, metadata = self._read(path)
        if not model_file.is_file():
            raise ModelError(f"{self.title} not found: {model_file}")
        return load_keras(model_file, f"{self.name} model"), metadata, path

    def _read(self, path: Path) -> tuple[Path, dict]:
        model_file = path if path.suffix == ".keras" else path / MODEL_FILE
        meta_file = model_file.parent / METADATA_FILE
        if not path.exists():
            raise ModelError(f"{self.title} not found: {path}")
        if not meta_file.is_file():
            raise ModelError(f"{self.title} metadata not found: {meta_file}")
        try:
            metadata = json.loads(meta_file.read_text(encoding="utf-8"))
            if not isinstance(metadata, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in self.required if k not in metadata]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            if self.check is not None:
                self.check(metadata)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ModelError(f"bad {self.name} model metadata {meta_file}: {one_line(exc)}") from None
        return model_file, metadata


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
    if not hub and (path.endswith(".keras") or path.endswith(".h5")):
        model = load_keras(path)
        return LoadedModel(lambda x: model(x, training=False), spec, "keras", model)
    tf = import_tensorflow()

    try:
        if hub:
            import tensorflow_hub

            module = tensorflow_hub.load(path)
            return LoadedModel(lambda x: module(x), spec, "hub", module)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
            obj = tf.saved_model.load(path)
            sig = getattr(obj, "signatures", {}).get("serving_default") if hasattr(obj, "signatures") else None
            if sig is not None:
                name = list(sig.structured_input_signature[1].keys())[0]
                return LoadedModel(lambda x: sig(**{name: tf.constant(x)}), spec, "saved_model", obj)
            return LoadedModel(lambda x: obj(x), spec, "saved_model", obj)
    except Exception as exc:
        raise _unreadable("model", spec, exc) from None
    if os.path.isdir(path):
        keras_files = sorted(f for f in os.listdir(path) if f.endswith(".keras"))
        if len(keras_files) == 1:
            return load_model(os.path.join(path, keras_files[0]))
    raise ModelError(f"model {spec}: not a .keras file, SavedModel directory or hub: handle")


def check_model(spec: str, example: Optional[np.ndarray] = None) -> LoadedModel:
    """Load once at start-up (and optionally run one example) so a bad model fails fast."""
    model = load_model(spec)
    if example is not None:
        try:
            model(example)
        except Exception as exc:
            raise ModelError(f"model {spec} failed on an example input ({type(exc).__name__})") from None
    return model


class BatchedModelHandler(ModelHandler[ExampleT, PredictionT, ModelT]):
    """What every RunInference handler here shares: the model's path or URL, swappable through
    ``update_model_path`` (RunInference's ``model_metadata_pcoll`` side input, e.g.
    ``WatchFilePattern``); ``BatchElements`` arguments; the metrics namespace. RunInference keeps
    one model copy per worker process. A subclass loads its model from :attr:`model_uri`
    (``load_model``) and runs a batch (``run_inference``)."""

    def __init__(self, model_uri: Optional[str], min_batch_size: int = 1, max_batch_size: int = 64,
                 max_batch_duration_secs: Optional[float] = None):
        super().__init__()
        self._model_uri = model_uri
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        if max_batch_duration_secs:
            self._batching["max_batch_duration_secs"] = max_batch_duration_secs

    @property
    def model_uri(self) -> Optional[str]:
        return self._model_uri

    def update_model_path(self, model_path: Optional[str] = None):
        if model_path:
            self._model_uri = model_path

    def batch_elements_kwargs(self):
        return dict(self._batching)

    def get_metrics_namespace(self) -> str:
        return "csadetect_inference"


class TFModelHandler(BatchedModelHandler[np.ndarray, PredictionResult, LoadedModel]):
    """RunInference handler for any model :func:`load_model` reads: numpy examples in, stacked
    into one batch, a ``PredictionResult`` per example out."""

    def __init__(self, model_uri: str, min_batch_size: int = 1, max_batch_size: int = 64,
                 max_batch_duration_secs: Optional[int] = None, dtype: str = "float32"):
        super().__init__(model_uri, min_batch_size, max_batch_size, max_batch_duration_secs)
        self._dtype = dtype

    def load_model(self) -> LoadedModel:
        return load_model(self.model_uri)

    def run_inference(
        self, batch: Sequence[np.ndarray], model: LoadedModel, inference_args: Optional[dict] = None
    ) -> Iterable[PredictionResult]:
        if self._dtype == "object":
            stacked = np.asarray(list(batch), dtype=object)
        else:
            stacked = np.stack([np.asarray(x, dtype=self._dtype) for x in batch])
        outputs = model(stacked)
        return [PredictionResult(x, y, model_id=self.model_uri) for x, y in zip(batch, outputs)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(getattr(x, "nbytes", 0) for x in batch)
