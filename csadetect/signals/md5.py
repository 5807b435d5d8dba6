"""MD5 of a file's bytes: exact copies, the digest most hash lists carry."""
from __future__ import annotations

from csadetect.signals.digest import DigestSignal


class Md5Signal(DigestSignal):
    name = "md5"
    evidence = 2
    # python-threatexchange's VideoMD5Signal, ThreatExchange's HASH_MD5 / HASH_VIDEO_MD5
    aliases = ("video_md5", "photo_md5", "hash_md5", "hash_video_md5", "md5sum")
    threatexchange = "video_md5"
