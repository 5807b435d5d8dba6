"""Scenes rendered more than once, for the robustness benchmark's hard distractors
(``training.robustness_set.build_hard_distractors``): two *shots* of one generated scene are
different pictures of the same thing, never a copy of each other.

A :class:`Scene` is a description, not pixels: a far background (a fractal field, or a plain
studio sweep), a few shaded objects at depths between 0 (far) and 1 (near), and a subject (the
largest object). :func:`render` draws it through a camera:

* ``cam`` shifts the view window over a background rendered with a margin; each object moves by
  ``cam`` times its depth when ``parallax`` is on (a stereo pair: near things shift more than far
  ones), by ``cam`` alike otherwise (a burst shot taken from a slightly moved hand);
* ``subject`` moves the subject on its own (it moved between two burst frames);
* ``exposure`` scales the brightness; ``noise_seed`` draws the sensor grain.

How a copy and a different shot stay distinguishable in principle: a copy (cropped, framed,
re-encoded) carries the *same* pixels as its original, grain included, at one global geometric
transform; a second shot differs in grain everywhere (a fresh ``noise_seed``), in the subject's
position relative to the rest (a motion no single crop or scale explains) and, for stereo pairs,
in the relative position of near and far layers (parallax), and in exposure. The shift is kept at
2 to 6% of the width, so most of the picture's content is shared: these are near-duplicate
*scenes*, hard on purpose. A studio pair shares its background exactly (the same sweep, same
size) and differs in every object.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

MARGIN = 0.12  # background rendered this share wider/taller on each side, for camera shifts


@dataclasses.dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: np.ndarray  # (H + 2m, W + 2m, 3) float, m = round(MARGIN * width)
    objects: tuple  # (x, y, radius, colour (3,), depth 0..1), in background-free image coordinates
    light: np.ndarray  # unit 3-vector
    subject: int  # index into objects


def fractal(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """2D 1/f^beta noise in [0, 1] (also the texture of ``training.robustness_set``'s generated pictures)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    spec[0, 0] = 0
    field = np.fft.irfft2(spec, s=(h, w))
    field -= field.min()
    return field / max(field.max(), 1e-9)


def _objects(rng: np.random.Generator, w: int, h: int, n: int) -> tuple:
    out = []
    for _ in range(n):
        r = rng.uniform(0.07, 0.2) * min(w, h)
        out.append((rng.uniform(r, w - r), rng.uniform(r, h - r), r, rng.uniform(30, 255, 3), rng.uniform(0.3, 1.0)))
    out.sort(key=lambda o: o[4])  # far first, so near objects are drawn over them
    return tuple(out)


def make_scene(rng: np.random.Generator, studio: bool = False) -> Scene:
    """A random scene: a fractal background (or, ``studio``, a plain sweep: one colour with a
    soft vertical gradient) and 3 to 6 objects."""
    w = int(rng.choice([512, 560, 600]))
    h = int(w * rng.choice([0.66, 0.75]))
    m = round(MARGIN * w)
    H, W = h + 2 * m, w + 2 * m
    if studio:
        base = rng.uniform(60, 230, 3)
        y = np.linspace(0, 1, H)[:, None, None]
        bg = np.broadcast_to(base * (1.0 - 0.25 * y), (H, W, 3)).copy()
    else:
        pal = rng.uniform(0, 255, (int(rng.integers(3, 6)), 3))
        field = fractal(rng, H, W, rng.uniform(2.0, 2.8))
        pos = np.linspace(0, 1, len(pal))
        bg = np.stack([np.interp(field, pos, pal[:, c]) for c in range(3)], axis=-1)
    light = rng.normal(size=3)
    light[2] = abs(light[2]) + 0.8
    light /= np.linalg.norm(light)
    objects = _objects(rng, w, h, int(rng.integers(3, 7)))
    subject = int(np.argmax([o[2] for o in objects]))
    return Scene(w, h, bg, objects, light, subject)


def with_objects(scene: Scene, rng: np.random.Generator) -> Scene:
    """The same background and light with other objects (a different picture on the same set)."""
    objects = _objects(rng, scene.width, scene.height, int(rng.integers(3, 7)))
    return dataclasses.replace(scene, objects=objects, subject=int(np.argmax([o[2] for o in objects])))


def render(scene: Scene, cam=(0.0, 0.0), subject=(0.0, 0.0), exposure: float = 1.0, noise_seed: int = 0,
           parallax: bool = False, grain: float = 3.0) -> Image.Image:
    """One shot of ``scene`` (see the module docstring); ``cam``/``subject`` in px."""
    w, h = scene.width, scene.height
    m = round(MARGIN * w)
    # the far background moves with the camera by a third of a near object's parallax shift
    bx = int(np.clip(round(m + cam[0] * (0.3 if parallax else 1.0)), 0, 2 * m))
    by = int(np.clip(round(m + cam[1] * (0.3 if parallax else 1.0)), 0, 2 * m))
    arr = scene.background[by : by + h, bx : bx + w].copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    lx, ly, lz = scene.light
    for i, (x, y, r, colour, depth) in enumerate(scene.objects):
        k = depth if parallax else 1.0
        cx, cy = x - cam[0] * k, y - cam[1] * k
        if i == scene.subject:
            cx, cy = cx + subject[0], cy + subject[1]
        d2s = ((xx - cx - lx * r) / 1.6) ** 2 + ((yy - cy - r * 0.8) / 0.5) ** 2  # shadow
        arr *= np.where(d2s < r * r, 0.65, 1.0)[..., None]
        dx, dy = (xx - cx) / r, (yy - cy) / r
        inside = dx * dx + dy * dy < 1
        nz = np.sqrt(np.clip(1 - dx * dx - dy * dy, 0, 1))
        lam = np.clip(dx * lx + dy * ly + nz * lz, 0, 1)
        ball = colour * (0.2 + 0.8 * lam[..., None]) + 255 * (lam ** 30)[..., None] * 0.6
        arr = np.where(inside[..., None], ball, arr)
    arr = arr * exposure + np.random.default_rng(noise_seed).normal(0, grain, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def burst_shot(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Another frame of a burst: the hand moved 2-5% of the width, the subject moved 4-8%, a
    different exposure and fresh grain."""
    w = scene.width
    sign = lambda: 1 if rng.uniform() < 0.5 else -1  # noqa: E731
    cam = (sign() * rng.uniform(0.02, 0.05) * w, sign() * rng.uniform(0.0, 0.03) * w)
    subject = (sign() * rng.uniform(0.04, 0.08) * w, sign() * rng.uniform(0.0, 0.04) * w)
    return render(scene, cam, subject, exposure=rng.uniform(0.88, 1.12), noise_seed=int(rng.integers(1 << 31)))


def stereo_shot(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """The other eye of a stereo pair: a horizontal baseline of 3-6% of the width, with parallax
    (near objects shift more than far ones), fresh grain."""
    side = 1 if rng.uniform() < 0.5 else -1
    cam = (side * rng.uniform(0.03, 0.06) * scene.width, 0.0)
    return render(scene, cam, parallax=True, noise_seed=int(rng.integers(1 << 31)))
