"""The image set of the robustness benchmark (``benchmarks/bench_robustness.py``), built at run time
from benign sources, nothing downloaded:

* originals: natural photos bundled with scikit-image (``SKIMAGE_ORIGINALS``, test split only) plus
  procedurally generated pictures (``GENERATORS``: fractal landscapes, shaded still lifes, shape
  scenes, mosaics, interference patterns, clouds), kept when their PDQ quality passes
  ``QUALITY_GATE``;
* distractors: other generated pictures (other seeds), other bundled scikit-image images
  (``SKIMAGE_DISTRACTORS``, one half per split), crops of them and generated text pages, each also
  in a randomly framed version (border, letterbox, screenshot, caption bar ...), none of them a
  copy of an original;
* ``TRANSFORMS``: 30 edits of an original (re-encoding, resizing, crops, borders, letterboxing,
  screenshots, rotations, colour changes, overlays ...), each with the encoding it is saved in
  (``encode``), then issue 17's (``ISSUE17``): crops keeping 75% or 60% of the area at each
  corner, the centre or a random place, picture-in-picture over an unrelated picture at 60% and 40%
  of the canvas, three collage layouts (the original >= 42% of the canvas) and a meme frame with a
  caption above and below; and, since 2026-12-05, two mirrored edits (a 75% crop, a text band):
  20 in all;
* issue 17's scene originals and hard distractors (:func:`scene_pairs`, :func:`build_hard_distractors`):
  other shots of a scene original (burst frames, the other eye of a stereo pair, other objects on
  the same studio sweep; ``training.robustness_scenes`` says how a copy and another shot differ)
  and a template of a copy (collage, meme frame, screenshot, chat) holding a different picture.

Two splits, ``dev`` and ``test``, with their own seeds (``split_seed``). The benchmark reports on
both; ``training.calibrate_embedding`` calibrates the embedding's threshold on ``dev`` and never
sees ``test``. It lives here, with the training tools, so that calibration does not depend on a
benchmark.

The pictures are drawn in ``training.robustness_pictures``, the edits in
``training.robustness_transforms``; this module builds the splits from them.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
from PIL import Image

from csadetect.media.hashing import hash_image
from training import robustness_scenes as scenes
# re-exported: the pictures and edits moved out of this module, whose names callers still use from here
from training.robustness_pictures import (  # noqa: F401
    ORIGINAL_SIDE, WORDS, _fractal, _fractal1d, _palette, _colour_map, _finish, _size, gen_clouds, gen_landscape,
    gen_still_life, gen_shapes, gen_mosaic, gen_waves, GENERATORS, _font, _sentence, gen_text_page,
    SKIMAGE_ORIGINALS, SKIMAGE_DISTRACTORS, _skimage, _fit)
from training.robustness_transforms import (  # noqa: F401
    _canvas, _pad, _border, t_frame, _box_to, t_letterbox, t_pillarbox, t_blurred_fill, t_caption, _icons,
    t_screenshot_phone, t_screenshot_desktop, t_chat, t_polaroid, t_border_small_q40, t_overlay_text, t_watermark,
    t_noise, _crop, _crop_area, _filler, _pip, t_collage_1x2, t_collage_2x2, t_collage_3, t_meme_frame,
    t_mirror_crop75, t_mirror_overlay_text, _scale, _bright_contrast, Transform, TRANSFORMS, ISSUE17, TEMPLATES,
    FRAMINGS, LATE, encode)

QUALITY_GATE = 50


# --------------------------------------------------------------------------- data set


def split_seed(*parts) -> int:
    """A stable 64-bit seed from its parts (the split first), independent of PYTHONHASHSEED."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def build_originals(split: str) -> list[tuple[str, Image.Image]]:
    """Originals of a split; generated ones are kept only if their PDQ quality passes the gate."""
    out: list[tuple[str, Image.Image]] = []
    if split == "test":
        for name in SKIMAGE_ORIGINALS:
            img = _fit(_skimage(name))
            if hash_image(encode(img, "png")).quality >= QUALITY_GATE:  # else it could never match
                out.append((f"sk:{name}", img))
        per_gen = 4
    else:
        per_gen = 5
    for gen_name, gen in GENERATORS.items():
        made, seed = 0, 0
        while made < per_gen:
            img = gen(np.random.default_rng(split_seed(split, "orig", gen_name, seed)))
            seed += 1
            if hash_image(encode(img, "png")).quality >= QUALITY_GATE:
                out.append((f"gen:{gen_name}:{seed - 1}", img))
                made += 1
    out += [(name, img) for name, img, _ in scene_pairs(split)]
    return out


SCENE_KINDS = ("burst", "stereo", "studio")
SCENES_PER_KIND = 2
SHOTS_PER_SCENE = 3  # other shots of each scene, each a hard distractor


@functools.lru_cache(maxsize=2)
def scene_pairs(split: str) -> tuple:
    """(original name, original, ((kind, other shot), ...)) for the scene originals (issue 17):
    ``burst`` and ``stereo`` originals are one shot of a scene (``training.robustness_scenes``)
    and their distractors other shots of it (burst frames; the other eye); a ``studio`` original
    is objects on a plain sweep and its distractors other objects on the same sweep. Added to the
    originals (``build_originals``) after the first 36/30, their other shots are
    ``build_hard_distractors``'s. Cached: both of those ask."""
    out = []
    for kind in SCENE_KINDS:
        made, seed = 0, 0
        while made < SCENES_PER_KIND:
            rng = np.random.default_rng(split_seed(split, "scene", kind, seed))
            seed += 1
            scene = scenes.make_scene(rng, studio=kind == "studio")
            img = scenes.render(scene, noise_seed=int(rng.integers(1 << 31)))
            if hash_image(encode(img, "png")).quality < QUALITY_GATE:
                continue
            shots = []
            for _ in range(SHOTS_PER_SCENE):
                if kind == "burst":
                    shots.append(("burst", scenes.burst_shot(scene, rng)))
                elif kind == "stereo":
                    shots.append(("stereo", scenes.stereo_shot(scene, rng)))
                else:
                    other = scenes.with_objects(scene, rng)
                    shots.append(("studio", scenes.render(other, noise_seed=int(rng.integers(1 << 31)))))
            out.append((f"gen:{kind}:{seed - 1}", img, tuple(shots)))
            made += 1
    return tuple(out)


def build_hard_distractors(split: str, originals: "list[tuple[str, Image.Image]] | None" = None) -> list[tuple[str, str, bytes]]:
    """Hard distractors of issue 17, none a copy of an original: ``(kind, name, bytes)``.

    * ``burst`` / ``stereo`` / ``studio``: other shots of a scene original (:func:`scene_pairs`);
      in the test split also the right eye of scikit-image's ``stereo_motorcycle`` (its left eye
      is an original);
    * ``template``: each of ``TEMPLATES`` (the same collage layout and filler pictures, the same
      meme frame and caption, the same screenshot chrome and text, drawn with the same seed as an
      original's copy) holding a *different* picture, a generated one that is no original.
    """
    out: list[tuple[str, str, bytes]] = []
    for name, _, shots in scene_pairs(split):
        for i, (kind, shot) in enumerate(shots):
            out.append((kind, f"{kind}-shot:{name}:{i}", encode(shot, "jpeg")))
    if split == "test":
        import skimage.data as data

        right = np.asarray(data.stereo_motorcycle()[1])
        out.append(("stereo", "stereo-shot:sk:stereo_motorcycle:right", encode(_fit(Image.fromarray(right, "RGB")), "jpeg")))
    if originals is None:
        originals = build_originals(split)
    names = list(GENERATORS)
    for t_index, tname in enumerate(TEMPLATES):
        fn, how = TRANSFORMS[tname]
        for k in range(3):
            oname = originals[(7 * t_index + 5 * k) % len(originals)][0]
            gen_name = names[(t_index + k) % len(names)]
            other = GENERATORS[gen_name](np.random.default_rng(split_seed(split, "template-content", tname, k)))
            rng = np.random.default_rng(split_seed(split, tname, oname))  # the copy's seed: same template
            out.append(("template", f"template:{tname}:{oname}:{gen_name}", encode(fn(other, rng), how)))
    return out


def build_distractors(split: str) -> list[tuple[str, bytes]]:
    """Benign images that are no copy of any original, each also in a randomly framed version."""
    bases: list[tuple[str, Image.Image]] = []
    per_gen = 14
    for gen_name, gen in GENERATORS.items():
        for seed in range(per_gen):
            rng = np.random.default_rng(split_seed(split, "distractor", gen_name, seed))
            bases.append((f"gen:{gen_name}:{seed}", gen(rng)))
    for seed in range(8):
        bases.append((f"page:{seed}", gen_text_page(np.random.default_rng(split_seed(split, "page", seed)))))
    # scikit-image distractors: the test split gets one half of them, dev the other, plus crops
    names = SKIMAGE_DISTRACTORS[0::2] if split == "test" else SKIMAGE_DISTRACTORS[1::2]
    for name in names:
        img = _fit(_skimage(name))
        bases.append((f"sk:{name}", img))
        w, h = img.size
        for i, (fx, fy) in enumerate(((0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5))):
            crop = img.crop((round(fx * w), round(fy * h), round((fx + 0.5) * w), round((fy + 0.5) * h)))
            bases.append((f"sk:{name}:q{i}", crop))
    out: list[tuple[str, bytes]] = []
    rng = np.random.default_rng(split_seed(split, "framing"))
    for name, img in bases:
        out.append((name, encode(img, "jpeg")))
        framing = FRAMINGS[int(rng.integers(0, len(FRAMINGS)))]
        fn, how = TRANSFORMS[framing]
        out.append((f"{name}+{framing}", encode(fn(img, rng), how)))
    return out
