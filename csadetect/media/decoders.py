"""The picture formats csadetect decodes, and the one place that adds HEIF to Pillow's own.

An iPhone's camera saves HEIC (HEIF with HEVC) by default, and AVIF (HEIF with AV1) is what phones,
browsers and image CDNs increasingly send. Pillow 12 decodes AVIF itself; HEIC needs libheif, which
``pi-heif`` brings (the decode-only build of ``pillow-heif``: libheif and libde265, both LGPL-3.0 and
loaded as shared libraries, no encoder; ``pillow-heif``'s full build also bundles the x265 encoder,
GPL-2.0, so it is only a dev dependency, making HEIC copies for the tests and benchmarks).
Importing this module registers that plugin once, for the whole process; :mod:`.hashing` (and
so :mod:`.frames`) and the console's evidence viewer import it, so a HEIC upload is decoded wherever a
JPEG is: hashed, embedded, its later pictures read as frames, and shown to the reviewer.

The plugin is registered without thumbnails, depth maps or auxiliary images (none is hashed) and
with one decoding thread, as each worker process decodes one picture per core. HEIF's rotation and
mirror boxes are applied by libheif and the EXIF orientation then reads 1, so a phone photo is
upright exactly once.
"""
from __future__ import annotations

import pi_heif

# a file name's extension that names a picture (indicator folders, local file sources)
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif",
})

pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False, decode_threads=1)
