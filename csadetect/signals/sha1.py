"""SHA-1 of a file's bytes, for imported hash lists that carry SHA-1 only.

Every file is hashed with it (it costs less than MD5), so ``indicators build`` from a CSV or a
hash list with ``sha1`` rows, the index, ``match`` and the pipeline find exact copies. It is not
written by ``indicators from-media`` nor printed by ``csadetect hash``: MD5 and SHA-256 already
identify a file the Centre holds.
"""
from __future__ import annotations

from csadetect.signals.digest import DigestSignal


class Sha1Signal(DigestSignal):
    name = "sha1"
    evidence = 1
    from_media = False
    aliases = ("sha-1", "hash_sha1", "sha1sum")  # python-threatexchange has no SHA-1 signal type
