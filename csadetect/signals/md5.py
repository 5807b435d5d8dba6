"""MD5 of a file's bytes: exact copies, the digest most hash lists carry."""
from __future__ import annotations

from csadetect.signals.digest import DigestSignal


class Md5Signal(DigestSignal):
    name = "md5"
    evidence = 2
