"""Check that ``make models`` reproduces the shipped reference models.

    make models-check                      # retrain into a temporary folder, then compare
    python -m training.check_reproduction --retrained DIR [--shipped csadetect/models/reference]

Compares each model folder of ``--retrained`` (as ``make models MODELS_DIR=DIR`` writes it:
``grooming/``, ``embedding/``, ``classifier/``, ``demo/``) with the shipped one:

* **weights**: every array in ``model.keras``'s ``model.weights.h5``, by name and shape; the
  largest absolute difference must be at most ``--atol`` (0: bit-identical, which fixed seeds and
  TensorFlow op determinism give on one CPU and TensorFlow build);
* **architecture**: ``config.json`` inside ``model.keras``, equal but for ``shared_object_id``
  (Python object ids); vocabularies and other files in it: byte-identical;
* **decisions** in ``metadata.json``: every key whose name contains ``threshold`` (the embedding's
  near-duplicate threshold, the classifier's review and report thresholds, the grooming model's
  global and per-language thresholds, per-language Platt scaling) must be equal;
* **demo pictures**: byte-identical.

Dates, timings and throughput (in ``metadata.json``/``metrics.json``) are not compared: they
differ by run. Prints one line per model and exits 1 when anything differs, naming it; then a line
naming this machine's CPU, because bit-identical retraining holds only on the hardware the models
were trained on (TensorFlow's op determinism promises no more). Measured 2026-12-04 on an AMD EPYC
with AVX-512: grooming weights within 0.006 and its thresholds within 0.004; the embedding retrained
to another model (calibrated threshold 0.9913, shipped 0.9963); the classifier's report threshold
0.9856 (shipped 0.9522; it is trained on the retrained embedding); the demo pictures identical. Forcing oneDNN to AVX2
(``ONEDNN_MAX_CPU_ISA``), turning it off, or NumPy/OpenBLAS to AVX2 did not give the shipped
grooming weights either. Measured again 2026-12-06 on an AMD EPYC with AVX2 only: grooming weights within 0.004,
its per-language threshold cuts within 0.004 (held-out numbers as shipped to the third decimal: French ECE
0.071, Dutch recall 0.405); the embedding another model again (threshold 0.9977); the classifier's report
threshold 0.9727, review 0.6180 (shipped 0.5851); the demo pictures identical.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import zipfile
from pathlib import Path

import numpy as np

MODELS = ("grooming", "embedding", "classifier")


def _weights(h5_bytes: bytes) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _config(raw: bytes):
    """A saved Keras config without ``shared_object_id`` (Python object ids, new in every process)."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "shared_object_id"}
        return [strip(v) for v in x] if isinstance(x, list) else x
    return strip(json.loads(raw))


def _decisions(meta, prefix: str = "") -> dict[str, object]:
    """Every value under a key whose name contains ``threshold`` or ``platt``, by dotted path
    (``*_provenance`` objects left out: they hold the run's date)."""
    out: dict[str, object] = {}
    if isinstance(meta, dict):
        for key, value in meta.items():
            path = f"{prefix}{key}"
            if key.endswith("provenance"):
                continue
            if "threshold" in key or "platt" in key:
                out[path] = value
            else:
                out.update(_decisions(value, path + "."))
    return out


def compare_model(shipped: Path, retrained: Path, atol: float) -> list[str]:
    """Differences between two model folders (empty: reproduced)."""
    problems: list[str] = []
    for name in ("model.keras", "metadata.json"):
        if not (retrained / name).exists():
            return [f"{retrained / name} is missing"]
    with zipfile.ZipFile(shipped / "model.keras") as zs, zipfile.ZipFile(retrained / "model.keras") as zr:
        names_s, names_r = set(zs.namelist()), set(zr.namelist())
        if names_s != names_r:
            problems.append(f"model.keras members differ: {sorted(names_s ^ names_r)}")
        for member in sorted(names_s & names_r):
            a, b = zs.read(member), zr.read(member)
            if member.endswith(".h5"):
                wa, wb = _weights(a), _weights(b)
                if wa.keys() != wb.keys():
                    problems.append(f"weights differ in names: {sorted(set(wa) ^ set(wb))[:5]}")
                worst, where = 0.0, ""
                for key in sorted(wa.keys() & wb.keys()):
                    if wa[key].shape != wb[key].shape:
                        problems.append(f"weight {key}: shape {wa[key].shape} != {wb[key].shape}")
                        continue
                    if wa[key].dtype.kind in "fiu":
                        d = float(np.max(np.abs(wa[key].astype(np.float64) - wb[key].astype(np.float64)), initial=0.0))
                    else:
                        d = 0.0 if np.array_equal(wa[key], wb[key]) else float("inf")
                    if d > worst:
                        worst, where = d, key
                if worst > atol:
                    problems.append(f"weights differ: largest |difference| {worst:.3g} in {where} (allowed {atol:g})")
            elif member == "config.json":
                if _config(a) != _config(b):
                    problems.append("model.keras config.json differs (architecture or layer settings)")
            elif member != "metadata.json" and a != b:  # keras' own metadata.json holds the save date
                problems.append(f"model.keras member {member} differs")
    ds = _decisions(json.loads((shipped / "metadata.json").read_text()))
    dr = _decisions(json.loads((retrained / "metadata.json").read_text()))
    for key in sorted(ds.keys() | dr.keys()):
        if ds.get(key) != dr.get(key):
            problems.append(f"metadata {key}: shipped {ds.get(key)!r}, retrained {dr.get(key)!r}")
    return problems


def compare_files(shipped: Path, retrained: Path) -> list[str]:
    """Byte-for-byte comparison of two folders of plain files (the demo pictures)."""
    s = {p.name: p for p in shipped.iterdir() if p.is_file()}
    r = {p.name: p for p in retrained.iterdir() if p.is_file()} if retrained.is_dir() else {}
    problems = [f"{name}: only in {'shipped' if name in s else 'retrained'}" for name in sorted(s.keys() ^ r.keys())]
    problems += [f"{name} differs" for name in sorted(s.keys() & r.keys()) if s[name].read_bytes() != r[name].read_bytes()]
    return problems


def machine() -> str:
    """This machine's CPU in a few words: its model name and whether it has AVX-512 and AVX2."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine() or "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({isa})"


def trained_on(folder: Path) -> str | None:
    """The machine a model folder's ``metadata.json`` says it was trained on (``training.machine``,
    written by the trainers since 2026-12-04; None for models trained before, or without metadata)."""
    try:
        return json.loads((folder / "metadata.json").read_text()).get("training", {}).get("machine")
    except (OSError, ValueError, AttributeError):
        return None


def check(shipped: Path, retrained: Path, atol: float = 0.0) -> dict[str, list[str]]:
    out = {name: compare_model(shipped / name, retrained / name, atol) for name in MODELS}
    out["demo"] = compare_files(shipped / "demo", retrained / "demo")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.check_reproduction", description=__doc__.splitlines()[0])
    p.add_argument("--shipped", default="csadetect/models/reference")
    p.add_argument("--retrained", required=True, help="the folder `make models MODELS_DIR=...` wrote")
    p.add_argument("--atol", type=float, default=0.0, help="largest absolute weight difference allowed (default 0)")
    args = p.parse_args(argv)
    retrained = Path(args.retrained)
    if not retrained.is_dir():
        print(f"check_reproduction: {retrained} is not a folder (run `make models MODELS_DIR={retrained}` first)", file=sys.stderr)
        return 2
    results = check(Path(args.shipped), retrained, args.atol)
    for name, problems in results.items():
        print(f"{name:10s} {'reproduced' if not problems else 'DIFFERS: ' + '; '.join(problems[:4])}")
    if not any(results.values()):
        return 0
    print(f"this machine: {machine()}; bit-identical retraining holds only on the hardware the shipped models "
          "were trained on (see this module's docstring for what differs elsewhere)")
    for name in MODELS:
        print(f"{name:10s} shipped model trained on: {trained_on(Path(args.shipped) / name) or 'not recorded'}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
