"""The edits of the robustness benchmark (``training.robustness_set``): ``TRANSFORMS`` maps each
edit's name to a function ``(picture, rng) -> picture`` and the encoding its copy is saved in
(:func:`encode`). First 30 edits (re-encoding, resizing, crops, borders, letterboxing, screenshots,
rotations, colour changes, overlays ...), then issue 17's (``ISSUE17``: heavy crops, picture-in-picture
over an unrelated picture, collages, a meme frame, mirrored crops and text bands). The order of
``TRANSFORMS`` is the order of the benchmark's columns. ``FRAMINGS`` also frame the distractors,
and ``TEMPLATES`` holding a different picture are hard distractors (``training.robustness_set``).
"""
from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from training.robustness_pictures import GENERATORS, WORDS, _font, _sentence


# --------------------------------------------------------------------------- transforms


def _canvas(size, colour) -> Image.Image:
    return Image.new("RGB", (int(size[0]), int(size[1])), tuple(int(c) for c in colour))


def _pad(img, left, top, right, bottom, colour):
    out = _canvas((img.width + left + right, img.height + top + bottom), colour)
    out.paste(img, (left, top))
    return out


def _border(frac, colour):
    def f(img, rng):
        b = max(1, round(frac * max(img.size)))
        c = colour if colour is not None else tuple(int(x) for x in rng.integers(0, 256, 3))
        return _pad(img, b, b, b, b, c)

    return f


def t_frame(img, rng):  # picture-frame: white mat inside a dark frame
    mat = round(0.08 * max(img.size))
    inner = _pad(img, mat, mat, mat, mat, (245, 245, 240))
    b = round(0.03 * max(img.size))
    return _pad(inner, b, b, b, b, (40, 30, 25))


def _box_to(img, aspect, colour=(0, 0, 0)):
    """Pad to aspect (w/h) with bars: letterbox (top/bottom) or pillarbox (left/right)."""
    w, h = img.size
    if w / h > aspect:  # too wide -> bars top/bottom
        H = round(w / aspect)
        return _pad(img, 0, (H - h) // 2, 0, H - h - (H - h) // 2, colour)
    W = round(h * aspect)
    return _pad(img, (W - w) // 2, 0, W - w - (W - w) // 2, 0, colour)


def t_letterbox(img, rng):  # phone-portrait frame: bars above and below
    return _box_to(img, 9 / 16)


def t_pillarbox(img, rng):  # widescreen frame: bars left and right (letterbox if wider)
    return _box_to(img, 16 / 9 if img.width / img.height < 16 / 9 else 21 / 9)


def t_blurred_fill(img, rng):  # social-media style: blurred zoomed copy behind the picture
    w, h = img.size
    aspect = 9 / 16 if w >= h else 16 / 9
    boxed = _box_to(img, aspect)
    W, H = boxed.size
    s = max(W / w, H / h)
    bg = img.resize((math.ceil(w * s), math.ceil(h * s))).crop((0, 0, W, H))
    bg = bg.filter(ImageFilter.GaussianBlur(max(W, H) / 30))
    bg.paste(img, ((W - w) // 2, (H - h) // 2))
    return bg


def t_caption(img, rng):  # meme: white bar with black caption above the picture
    w, h = img.size
    size = max(14, w // 16)
    lines = 2
    bar = int(size * 1.5 * lines + size)
    out = _pad(img, 0, bar, 0, 0, (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i in range(lines):
        draw.text((size // 2, size // 2 + int(i * size * 1.5)), _sentence(rng, 5), fill=(0, 0, 0), font=_font(size))
    return out


def _icons(draw, rng, y, x0, x1, n, r, colour):
    for i in range(n):
        cx = x0 + (x1 - x0) * (i + 0.5) / n
        if rng.uniform() < 0.5:
            draw.ellipse([cx - r, y - r, cx + r, y + r], outline=colour, width=2)
        else:
            draw.rectangle([cx - r, y - r, cx + r, y + r], outline=colour, width=2)


def t_screenshot_phone(img, rng):
    W, H = 540, 1170
    dark = rng.uniform() < 0.5
    bg, fg = ((0, 0, 0), (235, 235, 235)) if dark else ((255, 255, 255), (20, 20, 20))
    out = _canvas((W, H), bg)
    draw = ImageDraw.Draw(out)
    draw.text((24, 14), "12:%02d" % rng.integers(0, 60), fill=fg, font=_font(22))
    _icons(draw, rng, 28, W - 130, W - 20, 3, 7, fg)
    draw.ellipse([16, 70, 64, 118], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw.text((76, 80), _sentence(rng, 2), fill=fg, font=_font(22))
    ph = round(img.height * W / img.width)
    ph = min(ph, 760)
    pw = round(img.width * ph / img.height)
    pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
    top = 132
    out.paste(pic, ((W - pw) // 2, top))
    y = top + ph + 14
    _icons(draw, rng, y + 14, 0, 220, 4, 11, fg)
    y += 44
    for _ in range(3):
        if y > H - 110:
            break
        draw.text((16, y), _sentence(rng, 6), fill=fg, font=_font(20))
        y += 30
    draw.rectangle([0, H - 80, W, H], fill=(28, 28, 28) if dark else (245, 245, 245))
    _icons(draw, rng, H - 40, 0, W, 5, 13, fg)
    return out


def t_screenshot_desktop(img, rng):
    W, H = 1280, 800
    out = _canvas((W, H), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, W, 78], fill=(222, 225, 230))
    draw.rounded_rectangle([10, 6, 260, 36], radius=8, fill=(255, 255, 255))
    draw.text((22, 12), _sentence(rng, 3), fill=(30, 30, 30), font=_font(16))
    draw.rounded_rectangle([90, 44, W - 90, 72], radius=14, fill=(255, 255, 255))
    draw.text((110, 49), "https://example.org/" + "-".join(rng.choice(WORDS, 3)), fill=(60, 60, 60), font=_font(16))
    draw.text((60, 100), _sentence(rng, 6).title(), fill=(10, 10, 10), font=_font(34))
    box_w, box_h = 700, 560
    s = min(box_w / img.width, box_h / img.height)
    pw, ph = round(img.width * s), round(img.height * s)
    pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
    out.paste(pic, (60, 170))
    x = 60 + pw + 40
    y = 170
    while y < H - 40:
        draw.text((x, y), _sentence(rng, 4), fill=(40, 40, 40), font=_font(18))
        y += 28
    return out


def t_chat(img, rng):  # messenger screenshot: the picture in a rounded bubble between text bubbles
    W, H = 600, 1000
    out = _canvas((W, H), (236, 229, 221))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, W, 90], fill=(7, 94, 84))
    draw.text((80, 30), _sentence(rng, 2).title(), fill=(255, 255, 255), font=_font(24))
    y = 110
    for _ in range(2):
        draw.rounded_rectangle([20, y, 420, y + 56], radius=12, fill=(255, 255, 255))
        draw.text((34, y + 16), _sentence(rng, 5), fill=(20, 20, 20), font=_font(18))
        y += 70
    pw = 420
    ph = min(round(img.height * pw / img.width), 520)
    pw = round(img.width * ph / img.height)
    x = W - 24 - pw - 12
    draw.rounded_rectangle([x - 6, y - 6, x + pw + 6, y + ph + 30], radius=14, fill=(220, 248, 198))
    pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
    mask = Image.new("L", (pw, ph), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, pw - 1, ph - 1], radius=10, fill=255)
    out.paste(pic, (x, y), mask)
    draw.text((x + pw - 60, y + ph + 6), "12:%02d" % rng.integers(0, 60), fill=(90, 90, 90), font=_font(14))
    y += ph + 50
    if y < H - 80:
        draw.rounded_rectangle([20, y, 380, y + 56], radius=12, fill=(255, 255, 255))
        draw.text((34, y + 16), _sentence(rng, 4), fill=(20, 20, 20), font=_font(18))
    draw.rectangle([0, H - 70, W, H], fill=(246, 246, 246))
    draw.rounded_rectangle([14, H - 56, W - 80, H - 14], radius=20, fill=(255, 255, 255))
    return out


def t_polaroid(img, rng):  # instant-photo look: white frame, wider at the bottom, handwriting there
    w, h = img.size
    b = round(0.05 * max(w, h))
    out = _pad(img, b, b, b, 4 * b, (250, 250, 246))
    ImageDraw.Draw(out).text((2 * b, h + 2 * b), _sentence(rng, 3), fill=(40, 40, 120), font=_font(max(12, b)))
    return out


def t_border_small_q40(img, rng):  # grey border, then shrunk to 40% and saved at JPEG q=40
    out = _border(0.08, (128, 128, 128))(img, rng)
    return out.resize((max(1, round(out.width * 0.4)), max(1, round(out.height * 0.4))), Image.Resampling.BILINEAR)


def t_overlay_text(img, rng):
    w, h = img.size
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([0, int(h * 0.82), w, int(h * 0.97)], fill=(0, 0, 0, 150))
    draw.text((w * 0.05, h * 0.84), _sentence(rng, 4).upper(), fill=(255, 255, 255, 255), font=_font(max(12, h // 16)))
    return Image.alpha_composite(out, layer).convert("RGB")


def t_watermark(img, rng):
    w, h = img.size
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    s = max(w, h) // 6
    x, y = w - s - w // 30, h - s // 2 - h // 30
    draw.ellipse([x, y - s // 3, x + s // 3, y], fill=(255, 255, 255, 140))
    draw.text((x + s // 3 + 4, y - s // 3), "logo", fill=(255, 255, 255, 140), font=_font(max(10, s // 3)))
    return Image.alpha_composite(out, layer).convert("RGB")


def t_noise(img, rng):
    arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 10, size=(img.height, img.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _crop(frac, where):
    def f(img, rng):
        w, h = img.size
        cw, ch = round(w * (1 - frac)), round(h * (1 - frac))
        if where == "centre":
            x, y = (w - cw) // 2, (h - ch) // 2
        else:  # keep the top-left part
            x, y = round(0.25 * (w - cw)), round(0.25 * (h - ch))
        return img.crop((x, y, x + cw, y + ch))

    return f


def _crop_area(area: float, where: str):
    """Keep ``area`` of the picture (each side scaled by sqrt(area)) at a corner (``tl``, ``tr``,
    ``bl``, ``br``), the centre (``c``) or a random position (``rand``)."""

    def f(img, rng):
        w, h = img.size
        s = math.sqrt(area)
        cw, ch = round(w * s), round(h * s)
        fx, fy = {"tl": (0, 0), "tr": (1, 0), "bl": (0, 1), "br": (1, 1), "c": (0.5, 0.5)}.get(where, (None, None))
        if fx is None:
            fx, fy = rng.uniform(0, 1), rng.uniform(0, 1)
        x, y = round(fx * (w - cw)), round(fy * (h - ch))
        return img.crop((x, y, x + cw, y + ch))

    return f


def _filler(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """An unrelated generated picture (its own seed from ``rng``) brought to ``size``: the other
    cells of a collage, the canvas behind a picture-in-picture."""
    names = list(GENERATORS)
    gen = GENERATORS[names[int(rng.integers(0, len(names)))]]
    pic = gen(np.random.default_rng(int(rng.integers(1 << 62))))
    return ImageOps.fit(pic, (max(1, int(size[0])), max(1, int(size[1]))), Image.Resampling.BILINEAR)


def _pip(area: float):
    """Picture-in-picture: the original, aspect kept, at ``area`` of an unrelated picture's canvas,
    at a random position (inside), half the time with a thin white border."""

    def f(img, rng):
        W = int(rng.choice([640, 720, 800]))
        H = round(W * rng.uniform(0.6, 1.0))
        canvas = _filler(rng, (W, H))
        s = math.sqrt(area * W * H / (img.width * img.height))
        pw, ph = min(W, round(img.width * s)), min(H, round(img.height * s))
        pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
        x, y = int(rng.integers(0, W - pw + 1)), int(rng.integers(0, H - ph + 1))
        if rng.uniform() < 0.5:
            ImageDraw.Draw(canvas).rectangle([x - 3, y - 3, x + pw + 2, y + ph + 2], fill=(255, 255, 255))
        canvas.paste(pic, (x, y))
        return canvas

    return f


def t_collage_1x2(img, rng):  # two pictures side by side (or stacked), the original one of them
    w, h = img.size
    gap = int(rng.choice([0, 4, 8]))
    if w <= h:  # side by side
        out = _canvas((2 * w + gap, h), (255, 255, 255))
        other = _filler(rng, (w, h))
        left = rng.uniform() < 0.5
        out.paste(img, (0 if left else w + gap, 0))
        out.paste(other, (w + gap if left else 0, 0))
    else:  # stacked
        out = _canvas((w, 2 * h + gap), (255, 255, 255))
        other = _filler(rng, (w, h))
        top = rng.uniform() < 0.5
        out.paste(img, (0, 0 if top else h + gap))
        out.paste(other, (0, h + gap if top else 0))
    return out


def t_collage_2x2(img, rng):  # an uneven 2x2 grid: the original in the large cell (~42% of the area)
    w, h = img.size
    W, H = round(w / 0.65), round(h / 0.65)
    gap = int(rng.choice([0, 4, 8]))
    out = _canvas((W + gap, H + gap), (255, 255, 255))
    right, bottom = rng.uniform() < 0.5, rng.uniform() < 0.5  # where the large cell sits
    ox, oy = (W - w + gap if right else 0), (H - h + gap if bottom else 0)
    sx, sy = (0 if right else w + gap), (0 if bottom else h + gap)
    out.paste(img, (ox, oy))
    out.paste(_filler(rng, (W - w, h)), (sx, oy))
    out.paste(_filler(rng, (w, H - h)), (ox, sy))
    out.paste(_filler(rng, (W - w, H - h)), (sx, sy))
    return out


def t_collage_3(img, rng):  # the original large on one side, two small pictures stacked beside it
    w, h = img.size
    cw = round(w * rng.uniform(0.5, 0.65))
    gap = int(rng.choice([0, 4, 8]))
    out = _canvas((w + gap + cw, h), (255, 255, 255))
    left = rng.uniform() < 0.5
    x_img, x_col = (0, w + gap) if left else (cw + gap, 0)
    out.paste(img, (x_img, 0))
    top = (h - gap) // 2
    out.paste(_filler(rng, (cw, top)), (x_col, 0))
    out.paste(_filler(rng, (cw, h - top - gap)), (x_col, top + gap))
    return out


def t_meme_frame(img, rng):  # meme: a black or white frame with a caption above AND below
    w, h = img.size
    dark = rng.uniform() < 0.5
    bg, fg = ((0, 0, 0), (255, 255, 255)) if dark else ((255, 255, 255), (0, 0, 0))
    size = max(16, w // 14)
    bar = int(size * 2.2)
    side = round(0.04 * w)
    out = _pad(img, side, bar, side, bar, bg)
    draw = ImageDraw.Draw(out)
    draw.text((side + size // 2, bar // 4), _sentence(rng, 4).upper(), fill=fg, font=_font(size))
    draw.text((side + size // 2, bar + h + bar // 4), _sentence(rng, 4).upper(), fill=fg, font=_font(size))
    return out


def t_mirror_crop75(img, rng):  # mirrored, then 75% of the area kept at a corner or the centre
    where = ("tl", "tr", "bl", "br", "c")[int(rng.integers(5))]
    return _crop_area(0.75, where)(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rng)


def t_mirror_overlay_text(img, rng):  # a text band over the picture, then mirrored
    return t_overlay_text(img, rng).transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _scale(img, fx: float, fy: float) -> Image.Image:
    size = (max(1, round(img.width * fx)), max(1, round(img.height * fy)))
    return img.resize(size, Image.Resampling.BILINEAR)


def _bright_contrast(img, rng):
    arr = np.asarray(img, dtype=np.float64)
    arr = (arr - 128) * 0.8 + 128 + 30
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


Transform = Callable[[Image.Image, np.random.Generator], Image.Image]

# name -> (function, encoding); crops take a share of each dimension
TRANSFORMS: dict[str, tuple[Transform, str]] = {
    "jpeg_q40": (lambda img, rng: img, "jpeg40"),
    "resize_50": (lambda img, rng: _scale(img, 0.5, 0.5), "jpeg"),
    "stretch_w130": (lambda img, rng: _scale(img, 1.3, 1.0), "jpeg"),
    "crop_centre_5": (_crop(0.05, "centre"), "jpeg"),
    "crop_centre_10": (_crop(0.10, "centre"), "jpeg"),
    "crop_centre_20": (_crop(0.20, "centre"), "jpeg"),
    "crop_offcentre_20": (_crop(0.20, "off"), "jpeg"),
    "crop_centre_30": (_crop(0.30, "centre"), "jpeg"),
    "border_white_10": (_border(0.10, (255, 255, 255)), "jpeg"),
    "border_black_15": (_border(0.15, (0, 0, 0)), "jpeg"),
    "border_colour_20": (_border(0.20, None), "jpeg"),
    "frame_mat": (t_frame, "jpeg"),
    "letterbox_9x16": (t_letterbox, "jpeg"),
    "pillarbox_16x9": (t_pillarbox, "jpeg"),
    "blurred_fill": (t_blurred_fill, "jpeg"),
    "caption_bar": (t_caption, "jpeg"),
    "screenshot_phone": (t_screenshot_phone, "png"),
    "screenshot_desktop": (t_screenshot_desktop, "png"),
    "chat_bubble": (t_chat, "jpeg"),
    "polaroid": (t_polaroid, "jpeg"),
    "border_small_q40": (t_border_small_q40, "jpeg40"),
    "rotate_90": (lambda img, rng: img.transpose(Image.Transpose.ROTATE_90), "jpeg"),
    "flip_h": (lambda img, rng: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "jpeg"),
    "rotate_3": (lambda img, rng: img.rotate(3, resample=Image.Resampling.BILINEAR, expand=True), "jpeg"),
    "bright_contrast": (_bright_contrast, "jpeg"),
    "greyscale": (lambda img, rng: ImageOps.grayscale(img).convert("RGB"), "jpeg"),
    "blur_r2": (lambda img, rng: img.filter(ImageFilter.GaussianBlur(2)), "jpeg"),
    "overlay_text": (t_overlay_text, "jpeg"),
    "watermark": (t_watermark, "jpeg"),
    "noise_10": (t_noise, "jpeg"),
    # issue 17: heavy crops (share of the AREA kept, at a corner, the centre or a random place)
    **{f"crop{a}_{where}": (_crop_area(a / 100, where), "jpeg")
       for a in (75, 60) for where in ("tl", "tr", "bl", "br", "c", "rand")},
    # issue 17: composites (the original >= 40% of the canvas)
    "pip_60": (_pip(0.60), "jpeg"),
    "pip_40": (_pip(0.40), "jpeg"),
    "collage_1x2": (t_collage_1x2, "jpeg"),
    "collage_2x2": (t_collage_2x2, "jpeg"),
    "collage_3": (t_collage_3, "jpeg"),
    "meme_frame": (t_meme_frame, "jpeg"),
    # issue 17, 2026-12-05: a mirror combined with a crop or a local edit (the region views are then
    # cut from the mirrored upload)
    "mirror_crop75": (t_mirror_crop75, "jpeg"),
    "mirror_overlay_text": (t_mirror_overlay_text, "jpeg"),
}
# the edits added for issue 17 (the benchmark reports them apart, and beside the first 30)
ISSUE17 = tuple(TRANSFORMS)[30:]
# a template of these holding a different picture is a hard distractor (build_hard_distractors)
TEMPLATES = ("pip_40", "collage_1x2", "collage_2x2", "collage_3", "meme_frame", "screenshot_phone",
             "screenshot_desktop", "chat_bubble")
FRAMINGS = (
    "border_white_10", "border_black_15", "border_colour_20", "frame_mat", "letterbox_9x16",
    "pillarbox_16x9", "blurred_fill", "caption_bar", "screenshot_phone", "screenshot_desktop",
    "chat_bubble", "polaroid",
)
# added after a first tuning round and then included in the dev tuning (marked in the report)
LATE = ("chat_bubble", "polaroid", "border_small_q40")


def encode(img: Image.Image, how: str) -> bytes:
    buf = io.BytesIO()
    if how == "png":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.save(buf, "JPEG", quality=40 if how == "jpeg40" else 85)
    return buf.getvalue()
