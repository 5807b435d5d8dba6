"""The ``value`` hash: PDQ of a picture's value channel, the largest of its red, green and blue at each
pixel, shown as a grey picture (``match.value_view``; issue 17, hue turns).

PDQ hashes luminance (0.299 R + 0.587 G + 0.114 B). A hue turn as most editors make it moves every
pixel's colour round the colour wheel of HSV (Pillow, OpenCV) or HSL (GIMP, Photoshop's
Hue/Saturation) and keeps its saturation and its value or lightness: that is, it keeps the pixel's
largest and smallest channel and only moves which channel holds them. The luminance moves with it
(a turn of 30 degrees takes a saturated red, luminance 76 of 255, to an orange of 151), so a copy with its
hue turned drifts away from its PDQ; the value channel does not move at all. A swap of the colour channels
(RGB saved as BGR) keeps it too, and so does a change of saturation in HSV. A hue turn that keeps
luminance (CSS ``hue-rotate``, ffmpeg's ``hue`` filter) is PDQ's own case.

Both sides use it: an upload gets one more PDQ hash for each picture it hashes
(:func:`csadetect.media.hashing.hash_image_with_views`: a ``value`` variant for the image, ``<view>-value``
for each preprocessing view, sub-image and later frame; never an embedding input: the embedding is a colour
model), and ``indicators from-media`` one more PDQ row per picture (``-value``,
:class:`csadetect.signals.pdq.PdqSignal`), so the value hash of a copy meets the value row of its original. A grey picture has no value picture (it
would be its luminance again).
"""
from __future__ import annotations

from typing import Optional

from PIL import Image, ImageChops

VALUE = "value"  # the name of the view (an upload's variant) and of the row suffix (``-value``)


def value_name(view: str) -> str:
    """The name of the value hash of an upload's picture ``view``: ``value`` for the whole image, else
    ``<view>-value`` (``trim-value``, ``cell-value``: the value channel of a preprocessing view or a
    sub-image, so a hue-turned picture that was also framed, screenshotted or pasted into a collage meets
    its original's ``-value`` row)."""
    return VALUE if view == "image" else f"{view}-{VALUE}"


def is_value_name(name: str) -> bool:
    """Whether an upload's variant ``name`` is a value hash (:func:`value_name`)."""
    return name == VALUE or name.endswith(f"-{VALUE}")


def value_picture(img: Image.Image, scale_key: Optional[str] = None) -> Optional[Image.Image]:
    """``img``'s value channel as a grey RGB picture (PDQ's luminance of it is the value), or None when
    ``img`` is grey (its channels equal everywhere). ``scale_key``: an ``info`` entry copied over (the
    decode scale PDQ blurs by)."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    r, g, b = rgb.split()
    if ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None:
        return None
    v = ImageChops.lighter(ImageChops.lighter(r, g), b)
    out = Image.merge("RGB", (v, v, v))
    if scale_key is not None and scale_key in img.info:
        out.info[scale_key] = img.info[scale_key]
    return out
