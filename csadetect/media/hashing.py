"""Perceptual and cryptographic hashing of images and videos.

PDQ comes from Meta's reference bindings (`pdqhash`), vPDQ from `vpdq`, the digests of the bytes
(MD5, SHA-1, SHA-256 by default; the callers in the detection path pass those of the registered
digest signal types, :func:`csadetect.signals.digests`) from :mod:`hashlib`. The functions here are
pure: bytes in, hashes out. They raise :class:`MediaError` with a one-line reason (never the
content) for anything that cannot be hashed, so callers can dead-letter the item.

Bounds (issue 12): an uploaded video (:func:`hash_video`) is checked against
:class:`VideoLimits` from its container's metadata (``ffprobe``) before a frame is decoded, then
decoded by a child process (:mod:`csadetect.media.vpdq_worker`) under a memory limit and a
wall-clock budget; its bytes sit in an anonymous memory file, never in a named temp file.
High-bit-depth images (modes I, I;16, F) are shrunk in their own mode and rescaled a band of rows
at a time, never copied whole as float64. :func:`hash_video_file` and :func:`hash_file` read the
operator's own files (indicator building, ``csadetect hash``) in-process, without those bounds.

Speed notes: JPEGs are decoded straight at reduced size with PIL's ``draft`` (DCT scaling), which
is where most of the time of hashing a multi-megapixel photo goes otherwise. PDQ itself only looks
at a 64x64 downsample, so hashing from <= 512 px (Meta's advice) keeps conformance.

Layout: this module decodes images (:func:`load_image`), assembles an image's hashes with its views
(:func:`hash_image_with_views`) and reads media files (:func:`hash_file`); the result types and
:class:`MediaError` live in :mod:`.hash_results`, the conversion to 8-bit RGB in :mod:`.rgb`, PDQ
in :mod:`.pdq` and video hashing in :mod:`.video`. Callers import all of them from here.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil  # noqa: F401 - shutil, subprocess, tempfile: re-exported, tests reach them as hashing.<module>
import subprocess  # noqa: F401
import tempfile  # noqa: F401
import warnings
from typing import Callable, Optional, Sequence

from PIL import Image, ImageFile, UnidentifiedImageError

from csadetect.core import fs
from csadetect.media import decoders  # noqa: F401 - registers HEIF (HEIC) with Pillow for every decode below
from csadetect.media.view_value import value_name, value_picture
# re-exported: what callers (and tests) import from csadetect.media.hashing, besides what this module defines
from csadetect.media.hash_results import (DIGESTS, ImageHashes, MediaError, PdqResult, VideoFrame,  # noqa: F401
                                          VideoHashes, crypto_hashes)
from csadetect.media.pdq import (PDQ_BITS, SCALE_INFO, _pdq, bits_to_bytes, hamming, pdq_from_array,  # noqa: F401
                                 pdq_from_image)
from csadetect.media.rgb import _CHUNK_PIXELS, _hash_size, _high_depth, _high_depth_to_rgb, _to_rgb  # noqa: F401
from csadetect.media.video import (PROBE_SECONDS, VideoInfo, VideoLimits, _anonymous_file, check_video,  # noqa: F401
                                   hash_video, hash_video_file, hash_video_upload, probe_video)

try:  # libjpeg-turbo through a thin binding: the same pixels as PIL's decoder, ~15% faster at 3 MP
    import simplejpeg
except ImportError:  # pragma: no cover - PIL decodes every JPEG then
    simplejpeg = None

# Our own pixel limit is enforced explicitly (see load_image); PIL's global guard stays as a backstop.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

HASH_SIDE = 512  # downscale to at most this many pixels on the long side before PDQ
# JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose long side stays >= this. 256
# would save ~3 ms of a 3 MP photo's 8.6 ms decode and still hash within ~2 bits of the full-size
# picture (the blur follows the full size), but the preprocessing views, tuned at 512 px, lose
# recall at 256 (benchmarks/stages.md, first note, "Decode").
DECODE_SIDE = 512
DEFAULT_MAX_PIXELS = 50_000_000

# EXIF orientation -> PIL transpose operations (applied in this order)
_EXIF_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _draft_box(size: tuple[int, int], side: int) -> tuple[int, int]:
    """The box to ask PIL's ``draft`` for so that it decodes at the smallest DCT scale (1/8, 1/4,
    1/2) whose long side stays >= ``side``. PIL picks the largest scale s with ``w // s`` and
    ``h // s`` still covering the box, so the box is the picture at that scale, rounded down
    (asking for the picture fitted to ``side`` instead would decode 2046x1022 at 1/2, not 1/4)."""
    w, h = size
    for denominator in (8, 4, 2):
        if -(-max(w, h) // denominator) >= side:
            return max(1, w // denominator), max(1, h // denominator)
    return w, h


def _decode_jpeg(data: bytes, box: tuple[int, int]) -> Optional[Image.Image]:
    """A JPEG decoded by libjpeg-turbo through ``simplejpeg`` at the smallest DCT scale that still
    covers ``box`` (the scale PIL's ``draft`` picks; the pixels are PIL's, tested), or None when it
    will not do (not installed, anything damaged: strict mode refuses what libjpeg only warns
    about), and PIL then decodes it and names the problem. Only for YCbCr and grey JPEGs: CMYK
    ones go to PIL, whose conversion to RGB differs from libjpeg-turbo's."""
    if simplejpeg is None:
        return None
    try:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=box[0], min_height=box[1], strict=True)
    except (ValueError, RuntimeError, OSError):
        return None
    return Image.fromarray(rgb, "RGB")


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = HASH_SIDE,
               decode_side: int = 0) -> Image.Image:
    """Decode image bytes into an RGB image of at most ``max_side`` px, EXIF orientation applied.

    A JPEG is decoded at the smallest DCT scale whose long side stays >= ``decode_side`` (default
    :data:`DECODE_SIDE`, never above ``max_side``). How much larger the picture was is kept in
    ``img.info[SCALE_INFO]``, so PDQ can blur the small picture as it would the full one.
    Raises MediaError for undecodable, truncated or over-limit images.
    """
    decode_side = min(decode_side or DECODE_SIDE, max_side) if max_side else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise MediaError("image has no pixels")
            if width * height > max_pixels:
                raise MediaError(f"image too large: {width}x{height} px exceeds the pixel limit {max_pixels}")
            try:
                orientation = int(img.getexif().get(0x0112, 1) or 1)
            except Exception:  # broken EXIF must not sink an otherwise fine image
                orientation = 1
            box = (width, height)
            if decode_side and img.format == "JPEG" and max(width, height) > decode_side:
                # DCT-domain downscale: decode at 1/2, 1/4 or 1/8 size such that the *long* side
                # stays >= decode_side: 2048x1536 decodes straight to 512x384
                box = _draft_box((width, height), decode_side)
            fast = _decode_jpeg(data, box) if img.format == "JPEG" and img.mode in ("RGB", "L") else None
            if fast is not None:
                img = fast
            else:
                if box != (width, height):
                    img.draft("RGB", box)
                img.load()
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("image exceeds the decompression pixel limit") from exc
    except UnidentifiedImageError as exc:
        raise MediaError("undecodable image: unknown or corrupt format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).split("\n", 1)[0][:120]
        if "truncated" in reason.lower():
            raise MediaError("truncated image") from exc
        raise MediaError(f"undecodable image ({type(exc).__name__})") from exc
    # the first frame of an animation is what was opened and loaded; its later frames are not read
    # here (csadetect.media.frames): counting them read past a cut-off or damaged one and raised
    img = _high_depth_to_rgb(img, max_side) if _high_depth(img.mode) else _to_rgb(img)
    # DCT scaling makes each pixel the mean of a 2x2, 4x4 or 8x8 block of the full picture, so
    # PDQ can blur it as the full picture (2048x1536 decoded at 512x384: 0.5 bits from the
    # full-size hash on average instead of 6.7). After a fractional box resize that model is
    # rough, and measured no better than hashing the resized picture as it is (Meta's test
    # images), so those are hashed as they are.
    scale = (width / img.size[0], height / img.size[1])
    if max_side and max(img.size) > max_side:
        img = img.resize(_hash_size(img.size, max_side), Image.Resampling.BOX)
        scale = (1.0, 1.0)
    for op in _EXIF_TRANSPOSE.get(orientation, ()):
        img = img.transpose(op)
    if orientation in (5, 6, 7, 8):  # a quarter turn swaps the axes
        scale = scale[::-1]
    img.info[SCALE_INFO] = scale
    return img


Preprocessor = Callable[[Image.Image], Sequence[tuple[str, Image.Image]]]


def hash_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dihedral: bool = True,
    preprocess: Optional[Preprocessor] = None,
    digests: Sequence[str] = DIGESTS,
) -> ImageHashes:
    """Hash image bytes: PDQ (+ dihedral), quality, the ``digests`` of the bytes, and PDQ of
    preprocessed variants.

    ``preprocess`` (see :mod:`csadetect.media.preprocess`) returns extra (name, image) views, e.g. the
    image with uniform borders removed; each is hashed and carried in ``variants``.
    """
    return hash_image_with_views(data, max_pixels, dihedral, preprocess, digests)[0]


INVERTED = "inverted"  # the variant of an upload's PDQ hashes with every bit flipped (a photo negative's)


def inverted_name(view: str) -> str:
    """The variant name of a view's flipped PDQ hashes (``match.inverted_view``)."""
    return f"{view}-{INVERTED}"


def _flipped(result: PdqResult) -> PdqResult:
    return PdqResult(pdq=_complement(result.pdq), quality=result.quality,
                     dihedral=tuple(_complement(code) for code in result.dihedral))


def _complement(code: bytes) -> bytes:
    return bytes(255 - b for b in code)


def hash_image_with_views(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dihedral: bool = True,
    preprocess: Optional[Preprocessor] = None,
    digests: Sequence[str] = DIGESTS,
    frames: int = 0,
    value: bool = False,
    inverted: bool = False,
) -> tuple[ImageHashes, list[tuple[str, Image.Image]]]:
    """:func:`hash_image`, plus the decoded pictures it hashed: ``[("image", img), (view name,
    view), ...]`` (for the embedding model, which then sees the same views as PDQ). ``frames``: up
    to that many distinct later frames of an animated image are views too (``frame-N``,
    :func:`csadetect.media.frames.later_frames`; ``match.image_frames``). ``value``: the value channel
    of each of those pictures is hashed too, after the views: ``value`` for the image, ``<view>-value``
    for each view (:func:`csadetect.media.view_value.value_name`; ``match.value_view``); they are not
    among the pictures (they are for PDQ only). ``inverted``: the image's PDQ hashes with every bit
    flipped are a variant too (``inverted``, :data:`INVERTED`; ``match.inverted_view``), and so are
    each preprocessed view's and sub-image's (``<view>-inverted``, :func:`inverted_name`: a negative
    also framed, letterboxed or shown in a screenshot; not an animation's later frames): a photo
    negative's PDQ is its original's complement (each DCT coefficient and their median change sign),
    so an inverted copy's complement meets its original's row (0-4 bits on the robustness benchmark's
    test split) while no other picture's comes within 96 bits; for uploads, never for indicators."""
    hex_digests = crypto_hashes(data, digests)
    img = load_image(data, max_pixels=max_pixels)
    main = pdq_from_image(img, dihedral=dihedral)
    variants: list[tuple[str, PdqResult]] = []
    pictures: list[tuple[str, Image.Image]] = [("image", img)]
    found = list(preprocess(img)) if preprocess is not None else []
    n_views = len(found)
    if frames:
        from csadetect.media.frames import later_frames  # lazily: it imports this module

        found += later_frames(data, frames, max_pixels)
    for name, view in found:
        variants.append((name, pdq_from_image(view, dihedral=dihedral)))
        pictures.append((name, view))
    if inverted:  # the image's hashes flipped, then each view's (a negative that is also framed or letterboxed);
        # not an animation's later frames (up to ``frames`` more, each 8 lookups, for a rare trick)
        variants += [(INVERTED if name is None else inverted_name(name), _flipped(result))
                     for name, result in [(None, main), *variants[:n_views]]]
    if value:
        for name, picture in pictures:
            grey = value_picture(picture, SCALE_INFO)
            if grey is not None:
                variants.append((value_name(name), pdq_from_image(grey, dihedral=dihedral)))
    hashes = ImageHashes(
        pdq=main.pdq,
        quality=main.quality,
        dihedral=main.dihedral,
        digests=hex_digests,
        width=img.size[0],
        height=img.size[1],
        variants=tuple(variants),
    )
    return hashes, pictures


def file_digests(path: str, algorithms: Sequence[str] = DIGESTS) -> dict[str, str]:
    """Hex digests of a file, one per hashlib algorithm (``csadetect.core.fs.file_digests``)."""
    return fs.file_digests(path, algorithms)


def hash_file(
    path: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    seconds_per_hash: float = 1.0,
    dihedral: bool = True,
    preprocess: Optional[Preprocessor] = None,
    with_views: bool = False,
    digests: Sequence[str] = DIGESTS,
    video_bars: bool = True,
    frames: int = 0,
    value: bool = False,
    inverted: bool = False,
):
    """Hash a media file, a video or an image by its extension: VideoHashes or ImageHashes.
    Raises MediaError (one line) for a missing, unreadable or undecodable file. With
    ``with_views``, returns ``(hashes, pictures)`` as :func:`hash_image_with_views` (no pictures
    for a video). ``video_bars``: :func:`hash_video_file`'s ``bars``; ``frames``, ``value`` and
    ``inverted``: :func:`hash_image_with_views`'s (later frames of an animated image, the value
    channel's hash, the flipped PDQ hashes)."""
    if is_video_path(path):
        _check_file(path)
        with _reading():
            hex_digests = file_digests(path, digests)
        frames = hash_video_file(path, seconds_per_hash=seconds_per_hash, bars=video_bars)
        video = VideoHashes(digests=hex_digests, frames=tuple(frames))
        return (video, []) if with_views else video
    data = read_media(path)
    result = hash_image_with_views(data, max_pixels=max_pixels, dihedral=dihedral, preprocess=preprocess,
                                   digests=digests, frames=frames, value=value, inverted=inverted)
    return result if with_views else result[0]


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise MediaError("file not found" if not os.path.exists(path) else "not a file")


@contextlib.contextmanager
def _reading():
    """An OSError while reading a media file as a MediaError (one line)."""
    try:
        yield
    except OSError as exc:
        raise MediaError(f"cannot read file ({exc.strerror or type(exc).__name__})") from None


def read_media(path: str, max_bytes: int = 0) -> bytes:
    """The bytes of a media file; MediaError (one line) when it is missing, not a file, larger than
    ``max_bytes`` (when given: an upload's ``limits.max_content_bytes``) or unreadable."""
    _check_file(path)
    with _reading():
        if max_bytes and os.path.getsize(path) > max_bytes:
            raise MediaError(f"file is larger than limits.max_content_bytes ({max_bytes} bytes)")
        with open(path, "rb") as fh:
            return fh.read()


VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}


def is_video_path(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS
