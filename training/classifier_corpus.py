"""Benign proxy corpus for the reference "new-material" image classifier.

**The task (a stand-in, nothing else).** Does the image show the *marker emblem* as its main
subject? The marker emblem is a fixed, entirely benign badge design, drawn procedurally (think of
detecting one particular logo or flag):

* a gold centre disc,
* one to three concentric rings (teal and gold bands separated by cream gaps),
* a crown of crimson petals (ellipses or triangles; other shapes only in evaluation) around the
  outermost ring,

with variable lighting (brightness, noise, a colour cast in evaluation), ring and petal counts,
proportions, rotation and squash, shown large (75-130% of the image's short side: the emblem is
the subject of the picture, partly cropped by the frame when large), near the centre, sometimes
partly covered by an occluder, semi-transparent or with a shadow, composited onto a varied
background. Everything is generated here, deterministically per seed. Nothing in it depicts
people or anything sensitive: it exists so that the classifier code path (embedding -> head ->
calibrated probability -> thresholds) can be trained, tested and benchmarked without real
material.

Why large and why a fixed colour scheme: the classifier is a head on the frozen 128-d
copy-detection embedding (``csadetect/models/embedding.py``), which keeps the coarse colour layout of an
image and little about small shapes. A head on it could not tell a randomly coloured emblem at
25-70% of the short side from its own background (AUC ~0.6), nor a large one from a plain target
(~0.65); see ``csadetect/models/cards/classifier.md``. A fixed design shown as the subject of the picture
is what such a descriptor can carry.

**Negatives** use the same background families without the emblem:

* *easy*: the background alone (plus the same random clutter shapes a positive gets);
* *hard*: the background plus one look-alike of the same size, drawn in the emblem's own colours
  half of the time: a plain or two-tone disc, rings without petals (a target), petals without
  centre or rings (a starburst), a star polygon, a filled polygon, the emblem **recoloured** (the
  design in other colours; the task is this design in its colours, as logo detection is), a
  flag of stripes in the emblem's colours; evaluation adds concentric squares and an asterisk.

**Backgrounds**: ``csadetect.media.synth.synthetic_image`` (colour fields plus shapes), crops of the
scikit-image sample images (bundled, offline), linear/radial gradients, smooth noise and
screenshot-like canvases (UI bars, text lines, cards, round avatars); the evaluation split adds a
background family never seen in training (stripes and checker tiles).

**Splits** are fixed by seed range, so no two splits share an example:

==============  ====================  ========================================================
split           seeds                 held out from training
==============  ====================  ========================================================
train           0 .. 399,999          --
calibration     400,000 .. 799,999    its own scikit-image backgrounds (``CALIB_SKIMAGE``)
eval            800,000 .. 1,199,999  its own scikit-image backgrounds (``EVAL_SKIMAGE``), the
                                      tile background family, half the positives drawn with one
                                      held-out emblem parameter (petal counts 4-5 and 13-16,
                                      round and kite petals, sizes 65-75% and 130-145% of the
                                      short side, squash 0.6-0.75, darker/brighter lighting with
                                      a colour cast), two held-out hard-negative kinds
==============  ====================  ========================================================

Public API: :func:`positive_example`, :func:`negative_example`, :func:`example`,
:func:`dataset`, :func:`dataset_seeds`, :func:`split_of`. ``positive_example(s)`` and
``negative_example(s)`` share their background, so a pair differs only in the emblem (or its
look-alike).

The background families are drawn in ``training.classifier_backgrounds``, the emblem and its
look-alikes in ``training.classifier_emblem``; this module puts examples together.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.models.loader import REFERENCE_DIR
# re-exported: the backgrounds and the emblem moved out of this module, whose names callers still use from here
from training.classifier_backgrounds import (  # noqa: F401
    _rand_color, _vivid, _palette, _to_rgb_uint8, skimage_image, _skimage_bg, _gradient_bg, _noise_bg, _words,
    _screenshot_bg, _tiles_bg, _clutter)
from training.classifier_emblem import (  # noqa: F401
    PETAL_SHAPES, EVAL_ONLY_PETAL_SHAPES, EMBLEM_COLOURS, PETALS_SEEN, PETALS_HELDOUT, SIZE_SEEN, SIZE_HELDOUT,
    SQUASH_SEEN, SQUASH_HELDOUT, LIGHT_SEEN, LIGHT_HELDOUT, HELDOUT_AXES, SMALL_SIZE, SS, _disc, _petal, _layer,
    _lit, emblem_colours, _far_from_emblem, recolour_palette, draw_emblem, draw_hard, _emblem_params, _place)

SIZE = (320, 240)
SPLITS = {
    "train": (0, 400_000),
    "calibration": (400_000, 800_000),
    "eval": (800_000, 1_200_000),
}
TRAIN_SKIMAGE = ["astronaut", "brick", "camera", "grass", "moon", "page", "rocket", "retina", "cell",
                 "clock", "immunohistochemistry", "binary_blobs"]
CALIB_SKIMAGE = ["horse", "chelsea", "gravel", "colorwheel"]
EVAL_SKIMAGE = ["coffee", "cat", "hubble_deep_field", "text", "coins", "logo", "microaneurysms",
                "checkerboard"]
BACKGROUNDS = ["synth", "skimage", "gradient", "noise", "screenshot"]
EVAL_ONLY_BACKGROUNDS = ["tiles"]
HARD_KINDS = ["disc", "rings", "petals", "star", "polygon", "recolour", "flag"]
EVAL_ONLY_HARD_KINDS = ["squares", "asterisk"]
HARD_IN_EMBLEM_COLOURS = 0.5    # share of look-alikes drawn in the emblem's colours


def split_of(seed: int) -> str:
    """The split a seed belongs to (``ValueError`` outside every split)."""
    for name, (lo, hi) in SPLITS.items():
        if lo <= seed < hi:
            return name
    raise ValueError(f"seed {seed} lies in no split (train 0..399999, calibration 400000..799999, "
                     f"eval 800000..1199999)")


def background(seed: int, size=SIZE) -> tuple[Image.Image, str]:
    """The background of example ``seed`` and its family name (split-aware)."""
    split = split_of(seed)
    rng = np.random.default_rng([seed, 11])
    families = BACKGROUNDS + (EVAL_ONLY_BACKGROUNDS if split == "eval" else [])
    probs = np.array([0.25, 0.25, 0.15, 0.15, 0.2] + ([0.15] if split == "eval" else []), np.float64)
    fam = families[int(rng.choice(len(families), p=probs / probs.sum()))]
    if fam == "synth":
        img = synthetic_image(int(rng.integers(0, 2**31 - 1)) + 10_000_000, size)
    elif fam == "skimage":
        names = {"train": TRAIN_SKIMAGE, "calibration": CALIB_SKIMAGE, "eval": EVAL_SKIMAGE}[split]
        img = _skimage_bg(rng, size, names)
    elif fam == "gradient":
        img = _gradient_bg(rng, size)
    elif fam == "noise":
        img = _noise_bg(rng, size)
    elif fam == "screenshot":
        img = _screenshot_bg(rng, size)
    else:
        img = _tiles_bg(rng, size)
    return img, fam


def _finish(img: Image.Image, rng) -> Image.Image:
    """Mild capture noise shared by all examples: sometimes blur, sometimes JPEG."""
    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
    if rng.random() < 0.4:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 95)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


# ---------------------------------------------------------------------------- examples

KINDS = {"positive": 1, "easy": 2, "hard": 3, "small": 4}


def example(seed: int, kind: str, size=SIZE) -> tuple[Image.Image, int, dict]:
    """One example: ``kind`` is ``"positive"``, ``"easy"`` or ``"hard"`` (negatives), or
    ``"small"`` (a diagnostic positive with the emblem at 20-45% of the short side, below the
    task's scope). Returns ``(image, label, info)``; ``info`` names the split, background family
    and the emblem's or look-alike's parameters. Deterministic per ``(seed, kind, size)``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    split = split_of(seed)
    img, fam = background(seed, size)
    img = img.copy()
    rng = np.random.default_rng([seed, KINDS[kind]])
    _clutter(img, np.random.default_rng([seed, 7]))  # the same clutter for all kinds of a seed
    info = {"seed": seed, "split": split, "background": fam, "kind": kind}
    short = min(size)
    label = 0
    if kind in ("positive", "small"):
        p = _emblem_params(rng, split)
        if kind == "small":
            p["size"], p["heldout"] = float(rng.uniform(*SMALL_SIZE)), "small"
        diam = max(8, int(round(short * p["size"])))
        layer = draw_emblem(rng, diam, p, emblem_colours(rng, p["light"], p["cast"]))
        _place(img, layer, rng, diam, p["squash"], occlude=rng.random() < 0.2)
        info["emblem"] = p
        label = 1
    elif kind == "hard":
        kinds = HARD_KINDS + (EVAL_ONLY_HARD_KINDS if split == "eval" else [])
        hk = kinds[int(rng.integers(0, len(kinds)))]
        lo, hi = SIZE_SEEN if split != "eval" else (min(SIZE_HELDOUT)[0], max(SIZE_HELDOUT)[1])
        frac = float(rng.uniform(lo, hi))
        diam = max(8, int(round(short * frac)))
        in_emblem_colours = hk != "recolour" and rng.random() < HARD_IN_EMBLEM_COLOURS
        if hk == "recolour":
            p = _emblem_params(rng, "train")
            layer = draw_emblem(rng, diam, p, recolour_palette(rng))
        else:
            if in_emblem_colours:
                cols = list(emblem_colours(rng, float(rng.uniform(*LIGHT_SEEN))).values())
                rng.shuffle(cols)
            else:
                cols = _palette(rng, 4)
            layer = draw_hard(rng, diam, hk, cols)
        squash = float(rng.uniform(0.75, 1.0)) if rng.random() < 0.4 else 1.0
        _place(img, layer, rng, diam, squash, occlude=rng.random() < 0.2)
        info.update(hard_kind=hk, size=frac, emblem_colours=bool(in_emblem_colours))
    return _finish(img, rng), label, info


def positive_example(seed: int, size=SIZE) -> Image.Image:
    """An image that shows the marker emblem (deterministic per seed)."""
    return example(seed, "positive", size)[0]


def negative_example(seed: int, size=SIZE, hard: bool = False) -> Image.Image:
    """An image without the emblem: the same background as ``positive_example(seed)``; with
    ``hard=True`` it holds a look-alike (disc, target, starburst, star, recoloured emblem, ...)."""
    return example(seed, "hard" if hard else "easy", size)[0]


# Seeds for demos, chosen by score with the reference model newmat-ref-0.2 (on embedding-ref-0.2)
# from the held-out eval range 900000..900099 (so they are selected, not a sample: use the metrics
# for rates): ``positive_example(s)`` scores >= report_threshold + 0.01 for every s in
# DEMO_POSITIVE_SEEDS (the first 20 such seeds); ``negative_example(s)`` and
# ``negative_example(s, hard=True)`` score < review_threshold - 0.05 for every s in
# DEMO_NEGATIVE_SEEDS (the first 20). Seeds in both lists make pairs with the same background.
# Checked by tests/test_classifier.py; re-pick them after retraining.
DEMO_POSITIVE_SEEDS = [900002, 900004, 900005, 900006, 900008, 900011, 900013, 900018, 900019, 900020,
                       900022, 900023, 900025, 900031, 900033, 900034, 900039, 900041, 900043, 900044]
DEMO_NEGATIVE_SEEDS = [900000, 900001, 900002, 900003, 900005, 900006, 900007, 900008, 900009, 900010,
                       900011, 900013, 900016, 900018, 900020, 900021, 900023, 900024, 900025, 900027]


KIND_MIX = ("positive", "positive", "easy", "hard")  # 50% positives, 25% easy, 25% hard negatives


def dataset_seeds(split: str, n: int, seed: int = 0) -> list[tuple[int, str]]:
    """``n`` distinct ``(example seed, kind)`` pairs from ``split``'s seed range, drawn by
    ``seed``; kinds follow :data:`KIND_MIX` (half positives, a quarter easy and a quarter hard
    negatives)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    lo, hi = SPLITS[split]
    if not 0 <= n <= hi - lo:
        raise ValueError(f"n={n} must lie in 0..{hi - lo} for split {split}")
    rng = np.random.default_rng([seed, 2024])
    seeds = lo + rng.choice(hi - lo, n, replace=False)
    return [(int(s), KIND_MIX[i % len(KIND_MIX)]) for i, s in enumerate(seeds)]


def dataset(split: str, n: int, seed: int = 0, size=SIZE, with_info: bool = False) -> list[tuple]:
    """``n`` labelled examples ``(PIL image, label)`` (``(image, label, info)`` with
    ``with_info``) of ``split`` (``train``, ``calibration`` or ``eval``); see
    :func:`dataset_seeds`."""
    out = []
    for s, kind in dataset_seeds(split, n, seed):
        img, label, info = example(s, kind, size)
        out.append((img, label, info) if with_info else (img, label))
    return out


# The pictures ``csadetect demo`` uploads (it is part of the package and cannot import this module):
# positives the reference classifier flags and a hard negative it does not, as the JPEG bytes of
# the demo's events, shipped in csadetect/models/reference/demo/. The seeds are the demo's
# NEW_MATERIAL_SEEDS and HARD_NEGATIVE_SEEDS (csadetect/demo.py); redraw them after retraining.
DEMO_PICTURE_SEEDS = {"new": (900001, 900005), "other-parts": (910007,)}
DEMO_PICTURES = REFERENCE_DIR / "demo"


def write_demo_pictures(directory=DEMO_PICTURES) -> list[Path]:
    """Write ``new-<seed>.jpg`` (``positive_example``) and ``other-parts-<seed>.jpg``
    (``negative_example(hard=True)``) into ``directory``; returns their paths."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    paths = []
    for name, seeds in DEMO_PICTURE_SEEDS.items():
        for seed in seeds:
            img = positive_example(seed) if name == "new" else negative_example(seed, hard=True)
            paths.append(Path(directory) / f"{name}-{seed}.jpg")
            paths[-1].write_bytes(jpeg_bytes(img))
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.classifier_corpus",
                                description="Write the pictures of the proxy class that `csadetect demo` uploads.")
    p.add_argument("--demo-pictures", default=str(DEMO_PICTURES), metavar="DIR",
                   help="where to write them (default: csadetect/models/reference/demo)")
    args = p.parse_args(argv)
    for path in write_demo_pictures(args.demo_pictures):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
