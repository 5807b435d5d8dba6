"""Thresholds for a target precision or FPR (DESIGN §5), behind ``csadetect tune``.

Reads scored, labelled examples (Parquet or JSON Lines), picks the threshold exactly over all
distinct scores (sorting, O(n log n)) with counts and 95% Wilson intervals, writes PR and ROC
curves as PNG, and stores a threshold with its provenance in a YAML config. The command line
(one JSON line on stdout, a human summary on stderr) is ``csadetect.cli.tune``.

A prediction is positive when ``score >= threshold``. Pure functions (:func:`choose_threshold`,
:func:`wilson`, :func:`pr_curve`, :func:`roc_curve`) are usable without the CLI.

A threshold is written only to a key of the settings schema that takes a score threshold
(:data:`TUNABLE`) and only from the scores of the detector that key is for
(:func:`check_config_key`): the classifier's scores never become ``grooming.threshold``, and a
misspelt key is refused with the nearest one instead of being written where nothing reads it.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from csadetect.config.flags import suggest
from csadetect.core import fs
from csadetect.config.settings import ConfigError, Settings, load_settings

PROGRESS_MIN_ROWS = 100_000
PROGRESS_MIN_BYTES = 8 * 1024 * 1024

_POSITIVE = {"1", "true", "confirmed"}
_NEGATIVE = {"0", "false", "manifestly_unfounded"}


class TuneError(ValueError):
    """Bad input or unreachable target; the message is one line for the operator."""


# Config keys `tune --write-config` may set -> the detector (a report's ``detector``) whose scores
# they are compared with. Hash matches have distances, not scores: nothing to tune here.
TUNABLE = {
    "new_material.review_threshold": "new-material-classifier",
    "new_material.report_threshold": "new-material-classifier",
    "grooming.threshold": "grooming-text",
    "embedding.threshold": "known-embedding",
    "embedding.auto_confirm_similarity": "known-embedding",
}
DETECTORS = tuple(dict.fromkeys(TUNABLE.values()))


def _in_schema(key: str) -> bool:
    """Whether dotted ``key`` names a field of the settings schema."""
    model: Any = Settings
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        model = fields[part].annotation
    return True


def check_config_key(key: Optional[str], detector: Optional[str]) -> str:
    """The detector ``key`` is for, after checking that ``key`` is a score threshold of the
    settings schema (:data:`TUNABLE`) and that ``detector`` (what scored the examples; None:
    unknown) is the one it is for. Raises TuneError (one line, with the nearest key for a
    misspelt one)."""
    if not key:
        raise TuneError(f"--write-config needs --config-key: one of {', '.join(TUNABLE)}")
    if key not in TUNABLE:
        hint = suggest(key, TUNABLE, prefix="")
        what = "is not a score threshold" if _in_schema(key) else "is not a key of the settings schema"
        raise TuneError(f"config key {key!r} {what}{hint}; tune writes one of {', '.join(TUNABLE)}")
    if detector is None:
        raise TuneError(f"say which detector scored these examples with --detector {TUNABLE[key]} (the scores "
                        f"have no detector column), so that {key} is set from the right model's scores")
    if detector != TUNABLE[key]:
        fits = [k for k, d in TUNABLE.items() if d == detector]
        raise TuneError(f"{key} is the {TUNABLE[key]} threshold, but these are {detector} scores"
                        + (f": use --config-key {' or '.join(fits)}" if fits else ""))
    return TUNABLE[key]


# ---------------------------------------------------------------------------------------- maths


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n``; ``(0.0, 1.0)`` when ``n == 0``."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must lie in [0, n={n}]")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise TuneError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if s.size and not np.all(np.isfinite(s)):
        raise TuneError("scores must be finite numbers (found NaN or infinity)")
    y = y.astype(bool)
    return s, y


def _cumulative(scores, labels):
    """Distinct thresholds (descending) with tp/fp counts of ``score >= t``; plus P and N."""
    s, y = _as_arrays(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y, dtype=np.int64)
    fp = np.cumsum(~y, dtype=np.int64)
    # last index of each run of equal scores: ties fall on the same side of any threshold
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.array([], dtype=np.int64)
    return s[last], tp[last], fp[last], int(y.sum()), int((~y).sum())


def pr_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)``, one point per distinct score, thresholds descending."""
    thr, tp, fp, pos, _ = _cumulative(scores, labels)
    precision = tp / (tp + fp)
    recall = tp / pos if pos else np.zeros_like(precision, dtype=np.float64)
    return precision, recall, thr


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``, one point per distinct score, thresholds descending."""
    thr, tp, fp, pos, neg = _cumulative(scores, labels)
    tpr = tp / pos if pos else np.zeros(tp.shape, dtype=np.float64)
    fpr = fp / neg if neg else np.zeros(fp.shape, dtype=np.float64)
    return fpr, tpr, thr


def choose_threshold(scores, labels, target_precision: Optional[float] = None,
                     target_fpr: Optional[float] = None) -> dict:
    """The lowest distinct score ``t`` with precision(score >= t) >= ``target_precision`` (most
    recall), or the lowest with FPR <= ``target_fpr``. Exactly one target. Raises TuneError when
    there are no positives or negatives or the target is not reachable (says the best achievable)."""
    if (target_precision is None) == (target_fpr is None):
        raise TuneError("give exactly one of target_precision and target_fpr")
    target = target_precision if target_fpr is None else target_fpr
    if not 0.0 <= float(target) <= 1.0:
        raise TuneError(f"target must lie in [0, 1], got {target}")
    thr, tp, fp, pos, neg = _cumulative(scores, labels)
    if pos == 0:
        raise TuneError("no positive examples: cannot estimate precision or recall")
    if neg == 0:
        raise TuneError("no negative examples: cannot estimate false positives")
    if target_precision is not None:
        prec = tp / (tp + fp)
        ok = np.nonzero(prec >= target_precision)[0]
        if ok.size == 0:
            raise TuneError(f"no threshold reaches precision >= {target_precision:g}; "
                            f"best achievable is {prec.max():.4f} at threshold {thr[int(np.argmax(prec))]:.6g}")
        i = int(ok[-1])  # thresholds descend: the last qualifying index is the lowest threshold
        target_desc = {"precision": float(target_precision)}
    else:
        fpr = fp / neg
        ok = np.nonzero(fpr <= target_fpr)[0]  # fpr is non-decreasing as the threshold falls
        if ok.size == 0:
            raise TuneError(f"no threshold reaches FPR <= {target_fpr:g}; "
                            f"best achievable is {fpr.min():.4f} at threshold {thr[0]:.6g}")
        i = int(ok[-1])
        target_desc = {"fpr": float(target_fpr)}
    tpi, fpi = int(tp[i]), int(fp[i])
    fn, tn = pos - tpi, neg - fpi
    return {
        "threshold": float(thr[i]),
        "target": target_desc,
        "precision": tpi / (tpi + fpi),
        "recall": tpi / pos,
        "fpr": fpi / neg,
        "tp": tpi, "fp": fpi, "fn": fn, "tn": tn, "n": pos + neg,
        "precision_ci95": list(wilson(tpi, tpi + fpi)),
        "recall_ci95": list(wilson(tpi, pos)),
    }


# ---------------------------------------------------------------------------------------- input


def _progress(total: Optional[int], unit: str, quiet: bool, big: bool):
    from tqdm import tqdm

    disable = quiet or not big or not sys.stderr.isatty()
    return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, disable=disable,
                desc="reading", leave=False)


def parse_label(value: Any) -> bool:
    """1/0, true/false (bool or string), "confirmed"/"manifestly_unfounded" -> bool."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, (float, np.floating)) and value in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _POSITIVE:
            return True
        if v in _NEGATIVE:
            return False
    raise ValueError("label must be 1/0, true/false or confirmed/manifestly_unfounded")


def _parse_score(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise ValueError("score is not a number")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError("score is not a number") from None
    if not math.isfinite(f):
        raise ValueError("score is not finite")
    return f


def _check_columns(present, score_col: str, label_col: str, where: str) -> None:
    missing = [c for c in (score_col, label_col) if c not in present]
    if missing:
        raise TuneError(f"{where}: missing column(s) {', '.join(missing)}")


def _read_parquet(path: Path, score_col: str, label_col: str, quiet: bool):
    from csadetect.core import parquet

    try:
        pf = parquet.open_file(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise TuneError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    _check_columns(pf.schema_arrow.names, score_col, label_col, str(path))
    scores, labels = [], []
    rows = pf.metadata.num_rows
    with _progress(rows, "rows", quiet, rows > PROGRESS_MIN_ROWS) as bar:
        for rg in range(pf.num_row_groups):
            t = pf.read_row_group(rg, [score_col, label_col])
            scores.extend(t.column(score_col).to_pylist())
            labels.extend(t.column(label_col).to_pylist())
            bar.update(t.num_rows)
    return scores, labels


def _read_json(path: Path, score_col: str, label_col: str, quiet: bool):
    scores, labels = [], []
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b"["):  # a .json file holding one array of objects
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TuneError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
        for i, obj in enumerate(rows, 1):
            if not isinstance(obj, dict):
                raise TuneError(f"{path}: item {i}: not a JSON object")
            _check_columns(obj, score_col, label_col, f"{path}: item {i}")
            scores.append(obj[score_col])
            labels.append(obj[label_col])
        return scores, labels
    with open(path, "rb") as fh, _progress(size, "B", quiet, size > PROGRESS_MIN_BYTES) as bar:
        for i, raw in enumerate(fh, 1):
            bar.update(len(raw))
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                raise TuneError(f"{path}: line {i}: not valid JSON") from None
            if not isinstance(obj, dict):
                raise TuneError(f"{path}: line {i}: not a JSON object")
            _check_columns(obj, score_col, label_col, f"{path}: line {i}")
            scores.append(obj[score_col])
            labels.append(obj[label_col])
    return scores, labels


def read_examples(path, score_col: str = "score", label_col: str = "label",
                  quiet: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(scores float64, labels bool)`` from ``.parquet``, ``.jsonl`` or ``.json``. Raises TuneError."""
    path = Path(path)
    if not path.is_file():
        raise TuneError(f"scores file not found: {path}")
    ext = path.suffix.lower()
    if ext == ".parquet":
        raw_s, raw_y = _read_parquet(path, score_col, label_col, quiet)
    elif ext in (".jsonl", ".json"):
        raw_s, raw_y = _read_json(path, score_col, label_col, quiet)
    else:
        raise TuneError(f"{path}: unsupported extension {ext or '(none)'} (use .parquet, .jsonl or .json)")
    if not raw_s:
        raise TuneError(f"{path}: no examples")
    scores = np.empty(len(raw_s), dtype=np.float64)
    labels = np.empty(len(raw_y), dtype=bool)
    for i, (s, y) in enumerate(zip(raw_s, raw_y)):
        try:
            scores[i] = _parse_score(s)
        except ValueError as exc:
            raise TuneError(f"{path}: row {i + 1}: column {score_col}: {exc}") from None
        try:
            labels[i] = parse_label(y)
        except ValueError as exc:
            raise TuneError(f"{path}: row {i + 1}: column {label_col}: {exc}") from None
    return scores, labels


def detectors_in(path, column: str = "detector") -> list[str]:
    """The distinct values of ``column`` in a scores file read by :func:`read_examples` (the
    ``detector`` of feedback's labelled examples); ``[]`` when it has no such column."""
    path = Path(path)
    values: set = set()
    if path.suffix.lower() == ".parquet":
        from csadetect.core import parquet

        try:
            pf = parquet.open_file(path)
        except Exception:  # read_examples has said why already
            return []
        if column not in pf.schema_arrow.names:
            return []
        values = set(pf.read([column]).column(column).to_pylist())
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        values = {row.get(column) for row in rows if isinstance(row, dict) and column in row}
    return sorted(str(v) for v in values if v is not None)


# --------------------------------------------------------------------------------------- output


def write_curves(scores, labels, result: dict, pr_path, roc_path) -> None:
    """PR and ROC curves as PNG with the chosen operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = pr_curve(scores, labels)
    fpr, tpr, _ = roc_curve(scores, labels)
    t = result["threshold"]
    label = f"t={t:.4g}"

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.step(recall, precision, where="post")
    ax.plot([result["recall"]], [result["precision"]], "o", color="red", label=label)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(pr_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(np.r_[0.0, fpr], np.r_[0.0, tpr])
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot([result["fpr"]], [result["recall"]], "o", color="red", label=label)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(roc_path)
    plt.close(fig)


def _nested(key: str, value) -> dict:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def write_config(config_path, key: str, threshold: float, provenance: dict) -> None:
    """Set dotted ``key`` (one of :data:`TUNABLE`) to ``threshold`` and ``<key>_provenance``
    beside it in a YAML file, creating it or keeping its other keys (comments are not kept), after
    checking that the settings it makes validate (range, report >= review threshold). Atomic
    replace."""
    import yaml

    path = Path(config_path)
    parts = key.split(".")
    if key not in TUNABLE:
        raise TuneError(f"config key {key!r} is not a score threshold{suggest(key, TUNABLE, prefix='')}; "
                        f"tune writes one of {', '.join(TUNABLE)}")
    try:
        load_settings(str(path) if path.exists() else None, _nested(key, float(threshold)))
    except ConfigError as exc:
        raise TuneError(f"{key}: {float(threshold):.6g} does not fit {path}: {exc}") from None
    data: Any = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TuneError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise TuneError(f"config file {path} must hold a mapping at the top level")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise TuneError(f"config key {'.'.join(parts[:i + 1])} in {path} is not a mapping")
        node = child
    node[parts[-1]] = float(threshold)
    node[f"{parts[-1]}_provenance"] = provenance
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    fs.replace_whole(str(path), text.encode("utf-8"))  # the config keeps its permissions
