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
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Callable, ClassVar, Optional, Sequence

import numpy as np
import pdqhash
from PIL import Image, ImageFile, UnidentifiedImageError

from csadetect.media import vpdq_worker
from csadetect.media.pixels import rgbx
from csadetect.media.view_value import value_name, value_picture

try:  # libjpeg-turbo through a thin binding: the same pixels as PIL's decoder, ~15% faster at 3 MP
    import simplejpeg
except ImportError:  # pragma: no cover - PIL decodes every JPEG then
    simplejpeg = None

try:  # the compiled PDQ (_pdq.c, built by setup.py in `make install`); the pdqhash binding without it
    from csadetect.media import _pdq
except ImportError:  # pragma: no cover - only without a C compiler at install time
    _pdq = None
    logging.getLogger("csadetect.media").warning(
        "the PDQ kernel (csadetect/media/_pdq.c) is not built: hashing through pdqhash, about 5x slower, and a "
        "JPEG decoded at reduced scale hashes as its small picture (a few bits from the kernel's hash); "
        "install a C compiler and run make install")

# Our own pixel limit is enforced explicitly (see load_image); PIL's global guard stays as a backstop.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

PDQ_BITS = 256
HASH_SIDE = 512  # downscale to at most this many pixels on the long side before PDQ
# JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose long side stays >= this. 256
# would save ~3 ms of a 3 MP photo's 8.6 ms decode and still hash within ~2 bits of the full-size
# picture (the blur follows the full size), but the preprocessing views, tuned at 512 px, lose
# recall at 256 (benchmarks/stages.md, first note, "Decode").
DECODE_SIDE = 512
# PIL ``info`` key of a decoded picture: (full width / width, full height / height), how much
# larger the picture it was reduced from is; crops inherit it. PDQ blurs by it (``pdq_from_image``).
SCALE_INFO = "csadetect.scale"
DIGESTS = ("md5", "sha1", "sha256")  # hashlib algorithms for the bytes of every file, by default
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


class MediaError(ValueError):
    """Media that cannot be decoded or hashed. The message is a one-line reason, no content."""


@dataclasses.dataclass(frozen=True)
class PdqResult:
    pdq: bytes  # 32 bytes, reference bit order (np.packbits of pdqhash's bit vector)
    quality: int
    dihedral: tuple[bytes, ...] = ()  # the 8 dihedral hashes (first is `pdq`)

    @property
    def hex(self) -> str:
        return self.pdq.hex()


class _Digests:
    """``md5`` and ``sha256`` of the bytes, the two digests a report carries, from ``digests``."""

    digests: dict[str, str]  # hashlib algorithm -> hex digest of the bytes

    @property
    def md5(self) -> str:
        return self.digests["md5"]

    @property
    def sha256(self) -> str:
        return self.digests["sha256"]


@dataclasses.dataclass(frozen=True)
class ImageHashes(_Digests):
    content: ClassVar[str] = "image"

    pdq: bytes
    quality: int
    dihedral: tuple[bytes, ...]
    digests: dict[str, str]
    width: int
    height: int
    # extra PDQ hashes of preprocessed versions (e.g. borders removed): (name, PdqResult)
    variants: tuple[tuple[str, PdqResult], ...] = ()


@dataclasses.dataclass(frozen=True)
class VideoFrame:
    frame: int
    quality: int
    pdq: bytes
    timestamp: float
    cropped: bool = False  # the frame's picture inside letterbox/pillarbox bars (csadetect.media.letterbox)
    cleaned: bool = False  # that picture (or the frame) with static overlays painted out (csadetect.media.overlay)
    framed: bool = False  # the frame inside its own bars (a still picture's; only looked up among PDQ rows)

    @classmethod
    def from_worker(cls, frame: int, quality: int, hexhash: str, timestamp: float, view: str) -> "VideoFrame":
        """A frame as :mod:`csadetect.media.vpdq_worker` gives it (``view``: one of its ``VIEWS``)."""
        if view not in vpdq_worker.VIEWS:
            raise ValueError(f"unknown frame view {view!r}")
        return cls(frame=frame, quality=quality, pdq=bytes.fromhex(hexhash), timestamp=timestamp,
                   cropped=view == "cropped", cleaned=view == "cleaned", framed=view == "framed")

    @property
    def view(self) -> str:
        """Which view of the frame this hash is: ``framed``, ``cleaned``, ``cropped`` or ``whole`` (the
        worker's ``""``), the inverse of :meth:`from_worker` (as a match line names it)."""
        return "framed" if self.framed else "cleaned" if self.cleaned else "cropped" if self.cropped else "whole"


@dataclasses.dataclass(frozen=True)
class VideoHashes(_Digests):
    content: ClassVar[str] = "video"

    digests: dict[str, str]
    frames: tuple[VideoFrame, ...]


def crypto_hashes(data: bytes, algorithms: Sequence[str] = DIGESTS) -> dict[str, str]:
    """Hex digests of ``data``, one per hashlib algorithm."""
    return {name: hashlib.new(name, data).hexdigest() for name in algorithms}


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Alpha is flattened onto white; high bit depths are rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if _high_depth(mode):
        return _high_depth_to_rgb(img, 0)
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:  # e.g. HSV has no direct conversion
        raise MediaError(f"unsupported image mode {mode}") from exc


_CHUNK_PIXELS = 1 << 20  # rows of about this many pixels at a time when rescaling sample values


def _high_depth(mode: str) -> bool:
    """32-bit integer, 16-bit integer (``I;16*``) or float samples: one channel, not 8-bit."""
    return mode in ("I", "F") or mode.startswith("I;")


def _row_chunks(img: Image.Image):
    """``(top, float32 array)`` for bands of rows of ``img`` (non-finite floats as 0): the only
    copies of the samples are one band at a time, never the whole picture in float64."""
    width, height = img.size
    step = max(1, _CHUNK_PIXELS // max(width, 1))
    for top in range(0, height, step):
        band = np.array(img.crop((0, top, width, min(height, top + step))), dtype=np.float32)  # a writable copy
        if img.mode == "F":
            np.nan_to_num(band, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        yield top, band


def _high_depth_to_rgb(img: Image.Image, max_side: int) -> Image.Image:
    """A high-bit-depth grey image (modes I, I;16*, F) -> 8-bit RGB, shrunk to ``max_side`` first
    when it is larger (box filter in the native mode: averaging commutes with the linear rescale
    below). Values already in 0..255 are kept, 0..65535 divided by 257, anything else stretched
    from its minimum to its maximum (of the full-size picture). Memory: the picture as decoded plus
    one band of float32 rows; no float64 copy of the picture."""
    if img.mode != "F":
        lo, hi = (float(v) for v in img.getextrema())
    else:  # getextrema() lets NaN and infinities through; they count as 0 as in _row_chunks
        lo, hi = float("inf"), float("-inf")
        for _, band in _row_chunks(img):
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
    if max_side and max(img.size) > max_side:
        img = img.resize(_hash_size(img.size, max_side), Image.Resampling.BOX)
    if hi <= 255 and lo >= 0:
        scale, offset = 1.0, 0.0
    elif lo >= 0 and hi <= 65535:
        scale, offset = 1.0 / 257.0, 0.0
    else:
        scale = 255.0 / max(hi - lo, 1e-9)
        offset = -lo * scale
    width, height = img.size
    out = np.empty((height, width), dtype=np.uint8)
    for top, band in _row_chunks(img):
        band *= np.float32(scale)
        band += np.float32(offset + 0.5)
        np.clip(band, 0, 255, out=band)
        out[top:top + band.shape[0]] = band.astype(np.uint8)
    return Image.fromarray(out, "L").convert("RGB")


def _hash_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so the long side is ``max_side`` (rounded, never below 1 px)."""
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


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


def _kernel_pdq(pixels: np.ndarray, channels: int, dihedral: bool, scale: tuple[float, float]) -> PdqResult:
    """PDQ through the compiled kernel of C-contiguous ``pixels`` (rows x cols x ``channels``),
    blurred as a picture ``scale`` (x, y) times larger."""
    rows, cols = pixels.shape[:2]
    packed, quality = _pdq.hashes(pixels, rows, cols, channels, dihedral, round(rows * scale[1]), round(cols * scale[0]))
    hashes = tuple(packed[i:i + 32] for i in range(0, len(packed), 32))
    return PdqResult(hashes[0], quality, hashes if dihedral else ())


def pdq_from_array(rgb: np.ndarray, dihedral: bool = True, scale: tuple[float, float] = (1.0, 1.0)) -> PdqResult:
    """PDQ of an HxWx3 uint8 array; with ``dihedral`` also the 8 rotations/flips. The compiled
    kernel (``_pdq.c``) hashes; the `pdqhash` binding (Meta's C++) is the fallback and the
    reference the kernel is tested against. ``scale``: (x, y) how much larger the picture these
    pixels were reduced from is (:data:`SCALE_INFO`); the kernel then blurs as PDQ blurs that
    picture, which brings the hash of a picture decoded at 1/8 scale within a few bits of its
    full-size hash (the binding ignores it)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise MediaError("image has no pixels")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if _pdq is not None:
        return _kernel_pdq(rgb, 3, dihedral, scale)
    if dihedral:
        hashes, quality = pdqhash.compute_dihedral(rgb)
        packed = tuple(bits_to_bytes(h) for h in hashes)
        return PdqResult(packed[0], int(quality), packed)
    bits, quality = pdqhash.compute(rgb)
    return PdqResult(bits_to_bytes(bits), int(quality), ())


def pdq_from_image(img: Image.Image, dihedral: bool = True) -> PdqResult:
    """PDQ of a picture; one from :func:`load_image` (or a crop of it) is blurred as the full-size
    picture it was decoded from. The kernel reads Pillow's own memory when it can (no copy)."""
    scale = img.info.get(SCALE_INFO, (1.0, 1.0))
    shared = rgbx(img) if _pdq is not None else None
    if shared is None or min(shared.shape[:2]) < 1:
        return pdq_from_array(np.asarray(img.convert("RGB")), dihedral=dihedral, scale=scale)
    return _kernel_pdq(shared, 4, dihedral, scale)


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


def hash_image_with_views(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dihedral: bool = True,
    preprocess: Optional[Preprocessor] = None,
    digests: Sequence[str] = DIGESTS,
    frames: int = 0,
    value: bool = False,
) -> tuple[ImageHashes, list[tuple[str, Image.Image]]]:
    """:func:`hash_image`, plus the decoded pictures it hashed: ``[("image", img), (view name,
    view), ...]`` (for the embedding model, which then sees the same views as PDQ). ``frames``: up
    to that many distinct later frames of an animated image are views too (``frame-N``,
    :func:`csadetect.media.frames.later_frames`; ``match.image_frames``). ``value``: the value channel
    of each of those pictures is hashed too, after the views: ``value`` for the image, ``<view>-value``
    for each view (:func:`csadetect.media.view_value.value_name`; ``match.value_view``); they are not
    among the pictures (they are for PDQ only)."""
    hex_digests = crypto_hashes(data, digests)
    img = load_image(data, max_pixels=max_pixels)
    main = pdq_from_image(img, dihedral=dihedral)
    variants: list[tuple[str, PdqResult]] = []
    pictures: list[tuple[str, Image.Image]] = [("image", img)]
    found = list(preprocess(img)) if preprocess is not None else []
    if frames:
        from csadetect.media.frames import later_frames  # lazily: it imports this module

        found += later_frames(data, frames, max_pixels)
    for name, view in found:
        variants.append((name, pdq_from_image(view, dihedral=dihedral)))
        pictures.append((name, view))
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


def hash_video_file(path: str, seconds_per_hash: float = 1.0, downsample: int = 0, threads: int = 1,
                    bars: bool = True) -> list[VideoFrame]:
    """vPDQ frame hashes of a video file. Raises MediaError when the video cannot be read. With
    ``bars`` (``match.video_bars``), a video with letterbox or pillarbox bars has each frame hashed
    whole and cropped to the picture inside them (``cropped``), as :func:`hash_video` hashes an
    upload (:func:`csadetect.media.vpdq_worker.cropped_frame_hashes`); ``downsample`` and
    ``threads`` only apply to vpdq's path (a video without bars, or ``bars`` off)."""
    import vpdq  # imported lazily: it links FFmpeg

    if not os.path.exists(path):
        raise MediaError("video file not found")
    if bars:
        cropped = _cropped_file(path, seconds_per_hash)
        if cropped is not None:
            return cropped
    try:
        features = vpdq.computeHash(
            input_video_filename=str(path),
            seconds_per_hash=seconds_per_hash,
            downsample_width=downsample,
            downsample_height=downsample,
            thread_count=threads,
        )
    except Exception as exc:  # vpdq raises plain exceptions for unreadable files
        raise MediaError(f"unreadable video ({type(exc).__name__})") from exc
    if not features:
        raise MediaError("unreadable video: no frames decoded")
    return [
        VideoFrame(
            frame=int(f.frame_number),
            quality=int(f.quality),
            pdq=bytes.fromhex(f.hex),
            timestamp=float(f.timestamp),
        )
        for f in features
    ]


def _cropped_file(path: str, seconds_per_hash: float) -> Optional[list[VideoFrame]]:
    """The frames of a video file with bars, cropped; None when it has none or that path cannot
    be used (no FFmpeg CLI, a stream it cannot read: vpdq then hashes it, and names the problem)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        frames = vpdq_worker.cropped_frame_hashes(fd, seconds_per_hash)
    except Exception:  # vpdq_worker.Unusable, or FFmpeg did what was not foreseen
        return None
    finally:
        os.close(fd)
    if frames is None:
        return None
    return [VideoFrame.from_worker(*f) for f in frames]


@dataclasses.dataclass(frozen=True)
class VideoLimits:
    """What one uploaded video may cost (``limits.*`` in the settings). Everything but the memory
    limit is checked from the container's metadata before a frame is decoded."""

    max_seconds: float = 600.0
    max_pixels: int = 8_294_400  # width * height of a frame (3840x2160)
    max_decoded_frames: int = 36_000  # frames in the container (600 s at 60 fps)
    max_hashed_frames: int = 3_600  # vPDQ frames (one per seconds_per_hash)
    budget_seconds: float = 300.0  # wall clock for probe + decode
    max_memory_bytes: int = 1 << 30  # RLIMIT_DATA of the decoder process

    @classmethod
    def from_settings(cls, limits) -> "VideoLimits":
        """From a :class:`csadetect.config.settings.Limits`."""
        return cls(
            max_seconds=limits.max_video_seconds,
            max_pixels=limits.max_video_pixels,
            max_decoded_frames=limits.max_video_decoded_frames,
            max_hashed_frames=limits.max_video_frames,
            budget_seconds=limits.video_budget_seconds,
            max_memory_bytes=limits.max_video_memory_bytes,
        )


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """A video's first video stream, as its container describes it (``None``: not stated)."""

    width: int
    height: int
    seconds: Optional[float]
    frames: Optional[int]  # stated frame count, or duration * average frame rate


PROBE_SECONDS = 10.0  # ffprobe reads headers only; this is its share of the budget at most


def _anonymous_file(data: bytes) -> int:
    """A readable descriptor holding ``data`` that has no name on any disk: a memfd (Linux), or
    else a temp file unlinked straight after it is created. Either vanishes with its last
    descriptor, so the plaintext does not outlive the process even when it is killed."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("csad-video", os.MFD_CLOEXEC)
    else:  # pragma: no cover - non-Linux
        fd, name = tempfile.mkstemp(prefix="csad-")
        os.unlink(name)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _number(value) -> Optional[float]:
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            return float(num) / float(den) if float(den) else None
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def probe_video(fd: int, limits: VideoLimits, timeout: float = PROBE_SECONDS) -> VideoInfo:
    """The container's metadata of the video in descriptor ``fd``, read by ``ffprobe`` (headers
    only: its decoders refuse frames above ``limits.max_pixels``, so a frame too large to decode is
    never decoded here either). Raises MediaError when ffprobe is missing, slow or says nothing."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise MediaError("video probe unavailable: ffprobe is not installed")
    cmd = [
        ffprobe, "-v", "error", "-max_pixels", str(limits.max_pixels), "-select_streams", "v:0",
        "-print_format", "json",
        "-show_entries", "stream=width,height,nb_frames,duration,avg_frame_rate:format=duration",
        f"/proc/self/fd/{fd}",
    ]
    try:
        done = subprocess.run(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=max(timeout, 0.1), check=False)
    except subprocess.TimeoutExpired:
        raise MediaError("video probe took longer than its time limit") from None
    try:
        info = json.loads(done.stdout or b"{}")
    except ValueError:
        info = {}
    streams = info.get("streams") or []
    if done.returncode != 0 or not streams:
        raise MediaError("unreadable video: no video stream in the container")
    stream = streams[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:  # ffprobe's decoder refused a frame above max_pixels, or none
        raise MediaError(f"video frame size unknown or above the pixel limit {limits.max_pixels}")
    seconds = _number(stream.get("duration")) or _number((info.get("format") or {}).get("duration"))
    frames = _number(stream.get("nb_frames"))
    rate = _number(stream.get("avg_frame_rate"))
    if frames is None and seconds is not None and rate:
        frames = seconds * rate
    return VideoInfo(width, height, seconds, None if frames is None else int(frames))


def check_video(info: VideoInfo, limits: VideoLimits, seconds_per_hash: float) -> None:
    """Raise MediaError naming the rule when metadata puts the video over a limit. A duration or
    frame count the container does not state is not refused here: the budget and the decoder's
    memory limit still bound the decode."""
    if info.width * info.height > limits.max_pixels:
        raise MediaError(f"video frame {info.width}x{info.height} px exceeds the pixel limit {limits.max_pixels}")
    if info.seconds is not None and info.seconds > limits.max_seconds:
        raise MediaError(f"video longer than {limits.max_seconds:g} s")
    if info.frames is not None and info.frames > limits.max_decoded_frames:
        raise MediaError(f"video has more than {limits.max_decoded_frames} frames")
    if seconds_per_hash > 0 and info.seconds is not None:
        hashed = int(info.seconds / seconds_per_hash) + 1
    else:
        hashed = info.frames
    if hashed is not None and hashed > limits.max_hashed_frames:
        raise MediaError(f"video would have more than {limits.max_hashed_frames} hashed frames")


def _decode(fd: int, seconds_per_hash: float, limits: VideoLimits, timeout: float, decode: str = "auto",
            bars: bool = True, overlays: bool = False, framed: bool = False) -> list[VideoFrame]:
    """vPDQ in a child process (:mod:`csadetect.media.vpdq_worker`, frames chosen by its mode
    ``decode``, cropped to the picture inside letterbox or pillarbox bars with ``bars``, hashed once
    more with static overlays painted out with ``overlays``, and inside each frame's own bars with
    ``framed``), killed after ``timeout`` s."""
    if decode not in vpdq_worker.MODES:
        raise ValueError(f"video decode mode must be one of {', '.join(vpdq_worker.MODES)}, not {decode!r}")
    cmd = [sys.executable, "-m", "csadetect.media.vpdq_worker", str(fd), repr(float(seconds_per_hash)),
           str(limits.max_memory_bytes), str(os.getpid()), decode, "crop" if bars else "whole",
           "clean" if overlays else "keep", "framed" if framed else "whole"]
    try:
        done = subprocess.run(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=max(timeout, 0.1), check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped the child
        raise MediaError(f"video decoding exceeded the budget of {limits.budget_seconds:g} s") from None
    if done.returncode == vpdq_worker.EXIT_MEMORY or done.returncode in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT):
        raise MediaError(f"video decoding exceeded the memory limit of {limits.max_memory_bytes} bytes")
    if done.returncode != 0:
        raise MediaError("unreadable video (decoder failed)")
    frames = []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        try:
            num, quality, hexhash, ts, *view = line.split()
            if len(view) > 1:
                raise ValueError(line)
            frames.append(VideoFrame.from_worker(int(num), int(quality), hexhash, float(ts), view[0] if view else ""))
        except ValueError:
            raise MediaError("unreadable video (decoder output)") from None
    if not frames:
        raise MediaError("unreadable video: no frames decoded")
    return frames


def hash_video(data: bytes, seconds_per_hash: float = 1.0, max_frames: int = 0, suffix: str = ".mp4",
               digests: Sequence[str] = DIGESTS, limits: Optional[VideoLimits] = None,
               decode: str = "auto", bars: bool = True, overlays: bool = True, framed: bool = False) -> VideoHashes:
    """Hash video bytes: vPDQ frames and the ``digests`` of the bytes, within ``limits``.

    The bytes go to an anonymous file (:func:`_anonymous_file`: never a name on disk); ``ffprobe``
    reads its metadata, which must be within the pixel, duration and frame limits, and then a
    child process decodes it under a data-segment limit and is killed when the wall-clock budget
    runs out. Every refusal is a MediaError naming the rule. ``max_frames`` (when given) overrides
    ``limits.max_hashed_frames``; ``suffix`` is unused (FFmpeg probes the format from the bytes).
    ``decode`` (``match.video_decode``): ``auto`` decodes only the key frames when they are dense
    enough to stand in for the samples, ``all`` every frame (:mod:`csadetect.media.vpdq_worker`).
    ``bars`` (``match.video_bars``): frames of a video with letterbox or pillarbox bars are hashed
    whole and cropped to the picture inside them (:mod:`csadetect.media.letterbox`), as
    :func:`hash_video_file` hashes an indicator's video. ``overlays`` (``match.video_overlays``): a
    video whose key frames show a static overlay (a logo box over the picture) has each of them
    hashed once more with it painted out (:mod:`csadetect.media.overlay`; key-frame decoding only;
    ``cleaned`` frames, which an indicator never keeps). ``framed`` (``match.video_frames_pdq``):
    each hashed frame with bars of its own (a still picture's, found in that frame alone) is hashed
    once more inside them (``framed`` frames: looked up among known pictures' PDQ rows only)."""
    del suffix
    limits = limits or VideoLimits()
    if max_frames:
        limits = dataclasses.replace(limits, max_hashed_frames=max_frames)
    deadline = time.monotonic() + limits.budget_seconds
    hex_digests = crypto_hashes(data, digests)
    fd = _anonymous_file(data)
    try:
        try:
            info = probe_video(fd, limits, timeout=min(PROBE_SECONDS, limits.budget_seconds))
        except MediaError:
            if time.monotonic() >= deadline:  # the budget, not the probe's own limit, ran out
                raise MediaError(f"video decoding exceeded the budget of {limits.budget_seconds:g} s") from None
            raise
        check_video(info, limits, seconds_per_hash)
        frames = _decode(fd, seconds_per_hash, limits, deadline - time.monotonic(), decode, bars, overlays, framed)
    finally:
        os.close(fd)
    hashed = len({f.frame for f in frames})  # frames, not hashes: a frame's cropped, cleaned, framed views are its
    if hashed > limits.max_hashed_frames:
        raise MediaError(f"video has too many hashed frames: {hashed} > limit {limits.max_hashed_frames}")
    return VideoHashes(digests=hex_digests, frames=tuple(frames))


def hash_video_upload(data: bytes, match, limits, digests: Sequence[str] = DIGESTS,
                      suffix: str = ".mp4") -> VideoHashes:
    """An uploaded video's hashes as the pipeline's hash stage makes them: :func:`hash_video` under
    the ``match`` and ``limits`` settings (``MatchSettings``, ``Limits``: sampling, decoder, bars,
    static overlays, framed pictures, the video limits). ``csadetect match`` hashes a video file so too."""
    return hash_video(data, seconds_per_hash=match.video_seconds_per_hash, max_frames=limits.max_video_frames,
                      suffix=suffix, digests=digests, limits=VideoLimits.from_settings(limits),
                      decode=match.video_decode, bars=match.video_bars, overlays=match.video_overlays,
                      framed=match.video_frames_pdq)


def file_digests(path: str, algorithms: Sequence[str] = DIGESTS) -> dict[str, str]:
    """Hex digests of a file, one per hashlib algorithm, read in 1 MiB blocks."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


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
):
    """Hash a media file, a video or an image by its extension: VideoHashes or ImageHashes.
    Raises MediaError (one line) for a missing, unreadable or undecodable file. With
    ``with_views``, returns ``(hashes, pictures)`` as :func:`hash_image_with_views` (no pictures
    for a video). ``video_bars``: :func:`hash_video_file`'s ``bars``; ``frames`` and ``value``:
    :func:`hash_image_with_views`'s (later frames of an animated image, the value channel's hash)."""
    if is_video_path(path):
        _check_file(path)
        with _reading():
            hex_digests = file_digests(path, digests)
        frames = hash_video_file(path, seconds_per_hash=seconds_per_hash, bars=video_bars)
        video = VideoHashes(digests=hex_digests, frames=tuple(frames))
        return (video, []) if with_views else video
    data = read_media(path)
    result = hash_image_with_views(data, max_pixels=max_pixels, dihedral=dihedral, preprocess=preprocess, digests=digests,
                                   frames=frames, value=value)
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


def hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big").__xor__(int.from_bytes(b, "big")).bit_count()
