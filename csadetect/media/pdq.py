"""PDQ of a decoded picture, with its 8 dihedral hashes, and :func:`hamming`, the distance of two hashes.

The compiled kernel (``_pdq.c``) hashes; Meta's reference binding (`pdqhash`) is the fallback
without it and the reference the kernel is tested against. PDQ itself only looks at a 64x64
downsample, so hashing from <= 512 px (Meta's advice) keeps conformance; a picture decoded at
reduced scale (:func:`csadetect.media.hashing.load_image`) says how much larger its full size is
in ``img.info[SCALE_INFO]``, and the kernel blurs it as it would blur that full-size picture.
"""
from __future__ import annotations

import logging

import numpy as np
import pdqhash
from PIL import Image

from csadetect.media.hash_results import MediaError, PdqResult
from csadetect.media.pixels import rgbx

try:  # the compiled PDQ (_pdq.c, built by setup.py in `make install`); the pdqhash binding without it
    from csadetect.media import _pdq
except ImportError:  # pragma: no cover - only without a C compiler at install time
    _pdq = None
    logging.getLogger("csadetect.media").warning(
        "the PDQ kernel (csadetect/media/_pdq.c) is not built: hashing through pdqhash, about 5x slower, and a "
        "JPEG decoded at reduced scale hashes as its small picture (a few bits from the kernel's hash); "
        "install a C compiler and run make install")

PDQ_BITS = 256
# PIL ``info`` key of a decoded picture: (full width / width, full height / height), how much
# larger the picture it was reduced from is; crops inherit it. PDQ blurs by it (``pdq_from_image``).
SCALE_INFO = "csadetect.scale"


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def _kernel_pdq(pixels: np.ndarray, channels: int, dihedral: bool, scale: tuple[float, float]) -> PdqResult:
    """PDQ through the compiled kernel of C-contiguous ``pixels`` (rows x cols x ``channels``),
    blurred as a picture ``scale`` (x, y) times larger."""
    rows, cols = pixels.shape[:2]
    packed, quality = _pdq.hashes(pixels, rows, cols, channels, dihedral, round(rows * scale[1]),
                                  round(cols * scale[0]))
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


def hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big").__xor__(int.from_bytes(b, "big")).bit_count()
