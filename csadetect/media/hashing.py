"""Perceptual and cryptographic hashing of images and videos.

PDQ comes from Meta's reference bindings (`pdqhash`), vPDQ from `vpdq`, the digests of the bytes
(MD5, SHA-1, SHA-256 by default; the callers in the detection path pass those of the registered
digest signal types, :func:`csadetect.signals.digests`) from :mod:`hashlib`. The functions here are
pure: bytes in, hashes out. They raise :class:`MediaError` with a one-line reason (never the
content) for anything that cannot be hashed, so callers can dead-letter the item.

Speed notes: JPEGs are decoded straight at reduced size with PIL's ``draft`` (DCT scaling), which
is where most of the time of hashing a multi-megapixel photo goes otherwise. PDQ itself only looks
at a 64x64 downsample, so hashing from <= 512 px (Meta's advice) keeps conformance.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
import warnings
from typing import Callable, ClassVar, Optional, Sequence

import numpy as np
import pdqhash
from PIL import Image, ImageFile, UnidentifiedImageError

# Our own pixel limit is enforced explicitly (see load_image); PIL's global guard stays as a backstop.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

PDQ_BITS = 256
HASH_SIDE = 512  # downscale to at most this many pixels on the long side before PDQ
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
    if mode in ("I", "F") or mode.startswith("I;"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim != 2:
            raise MediaError(f"unsupported image mode {mode}")
        lo, hi = float(arr.min()), float(arr.max())
        if hi <= 255 and lo >= 0:
            scaled = arr
        elif lo >= 0 and hi <= 65535:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) * (255.0 / max(hi - lo, 1e-9))
        grey = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:  # e.g. HSV has no direct conversion
        raise MediaError(f"unsupported image mode {mode}") from exc


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(w, h) scaled so the long side is ``side`` (never below 1 px)."""
    w, h = size
    scale = side / max(w, h)
    return max(1, int(w * scale)), max(1, int(h * scale))


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = HASH_SIDE) -> Image.Image:
    """Decode image bytes into an RGB image of at most ``max_side`` px, EXIF orientation applied.

    Raises MediaError for undecodable, truncated or over-limit images.
    """
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
            if max_side and img.format == "JPEG" and max(width, height) > max_side:
                # DCT-domain downscale: decode at 1/2, 1/4 or 1/8 size such that the *long* side
                # stays >= max_side (PIL picks the scale from the requested box, so ask for the
                # box the picture would fill at max_side: 2048x1536 decodes straight to 512x384)
                img.draft("RGB", _fit((width, height), max_side))
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
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    img = _to_rgb(img)
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        img = img.resize(size, Image.Resampling.BOX)
    for op in _EXIF_TRANSPOSE.get(orientation, ()):
        img = img.transpose(op)
    return img


def pdq_from_array(rgb: np.ndarray, dihedral: bool = True) -> PdqResult:
    """PDQ of an HxWx3 uint8 array; with ``dihedral`` also the 8 rotations/flips."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise MediaError("image has no pixels")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if dihedral:
        hashes, quality = pdqhash.compute_dihedral(rgb)
        packed = tuple(bits_to_bytes(h) for h in hashes)
        return PdqResult(packed[0], int(quality), packed)
    bits, quality = pdqhash.compute(rgb)
    return PdqResult(bits_to_bytes(bits), int(quality), ())


def pdq_from_image(img: Image.Image, dihedral: bool = True) -> PdqResult:
    return pdq_from_array(np.asarray(img), dihedral=dihedral)


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
) -> tuple[ImageHashes, list[tuple[str, Image.Image]]]:
    """:func:`hash_image`, plus the decoded pictures it hashed: ``[("image", img), (view name,
    view), ...]`` (for the embedding model, which then sees the same views as PDQ)."""
    hex_digests = crypto_hashes(data, digests)
    img = load_image(data, max_pixels=max_pixels)
    main = pdq_from_image(img, dihedral=dihedral)
    variants: list[tuple[str, PdqResult]] = []
    pictures: list[tuple[str, Image.Image]] = [("image", img)]
    if preprocess is not None:
        for name, view in preprocess(img):
            variants.append((name, pdq_from_image(view, dihedral=dihedral)))
            pictures.append((name, view))
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


def hash_video_file(path: str, seconds_per_hash: float = 1.0, downsample: int = 0, threads: int = 1) -> list[VideoFrame]:
    """vPDQ frame hashes of a video file. Raises MediaError when the video cannot be read."""
    import vpdq  # imported lazily: it links FFmpeg

    if not os.path.exists(path):
        raise MediaError("video file not found")
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


def hash_video(data: bytes, seconds_per_hash: float = 1.0, max_frames: int = 0, suffix: str = ".mp4",
               digests: Sequence[str] = DIGESTS) -> VideoHashes:
    """Hash video bytes: vPDQ frames and the ``digests`` of the bytes. FFmpeg reads from a file, so
    the bytes go to a private temp file that is removed straight after (the only disk I/O; the
    directory honours TMPDIR)."""
    hex_digests = crypto_hashes(data, digests)
    fd, tmp = tempfile.mkstemp(prefix="csad-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        frames = hash_video_file(tmp, seconds_per_hash=seconds_per_hash)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    if max_frames and len(frames) > max_frames:
        raise MediaError(f"video has too many hashed frames: {len(frames)} > limit {max_frames}")
    return VideoHashes(digests=hex_digests, frames=tuple(frames))


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
):
    """Hash a media file, a video or an image by its extension: VideoHashes or ImageHashes.
    Raises MediaError (one line) for a missing, unreadable or undecodable file. With
    ``with_views``, returns ``(hashes, pictures)`` as :func:`hash_image_with_views` (no pictures
    for a video)."""
    if not os.path.isfile(path):
        raise MediaError("file not found" if not os.path.exists(path) else "not a file")
    try:
        if is_video_path(path):
            hex_digests = file_digests(path, digests)
            frames = hash_video_file(path, seconds_per_hash=seconds_per_hash)
            video = VideoHashes(digests=hex_digests, frames=tuple(frames))
            return (video, []) if with_views else video
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise MediaError(f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    result = hash_image_with_views(data, max_pixels=max_pixels, dihedral=dihedral, preprocess=preprocess, digests=digests)
    return result if with_views else result[0]


VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}


def is_video_path(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big").__xor__(int.from_bytes(b, "big")).bit_count()
