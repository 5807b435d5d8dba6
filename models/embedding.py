"""Reference image embedding (copy-detection descriptor) — loading and inference.

    model = EmbeddingModel.load()            # models/reference/embedding by default
    vecs = model.embed([pil_img, ...])       # (n, dim) float32, L2-normalised
    same = float(vecs[0] @ vecs[1]) >= model.threshold

The model is a small CNN trained contrastively on benign proxies (generated images and
scikit-image samples) by ``models/train_embedding.py``; see ``models/cards/embedding.md``.
It is a stand-in for the EU Centre's models, not for production.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from models.handler import ModelError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "reference" / "embedding"
INPUT_SIZE = 64


def preprocess(img: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """PIL image -> (size, size, 3) uint8 array: RGB, squashed to a square (aspect not kept)."""
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        img = img.convert("RGB")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


class EmbeddingModel:
    def __init__(self, keras_model, metadata: dict):
        self.model = keras_model
        self.metadata = metadata
        self.input_size = int(metadata.get("input_size", INPUT_SIZE))
        self.dim = int(metadata.get("dim", 128))
        self.threshold = float(metadata["threshold"])
        self.version = str(metadata.get("version", "unknown"))

    @classmethod
    def load(cls, path=None) -> "EmbeddingModel":
        d = Path(path) if path is not None else DEFAULT_MODEL_DIR
        model_file, meta_file = d / "model.keras", d / "metadata.json"
        if not model_file.is_file() or not meta_file.is_file():
            raise ModelError(f"embedding model not found in {d} (need model.keras and metadata.json)")
        try:
            metadata = json.loads(meta_file.read_text())
            metadata["threshold"]
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"embedding model metadata unreadable in {d}: {type(e).__name__}") from None
        try:
            import keras

            km = keras.saving.load_model(str(model_file), compile=False)
        except Exception as e:  # noqa: BLE001
            msg = str(e).splitlines()[0][:120] if str(e) else ""
            raise ModelError(f"embedding model unreadable at {model_file}: {type(e).__name__} {msg}") from None
        return cls(km, metadata)

    def preprocess(self, img: Image.Image) -> np.ndarray:
        return preprocess(img, self.input_size)

    def embed_arrays(self, arr: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, s, s, 3) uint8 -> (n, dim) float32, L2-normalised."""
        if len(arr) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for i in range(0, len(arr), batch_size):
            chunk = np.asarray(arr[i : i + batch_size], dtype=np.float32)
            out.append(np.asarray(self.model(chunk, training=False), dtype=np.float32))
        v = np.concatenate(out)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def embed(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        arr = np.stack([self.preprocess(im) for im in images]) if len(images) else np.zeros(
            (0, self.input_size, self.input_size, 3), np.uint8
        )
        return self.embed_arrays(arr, batch_size)
