"""SHA-256 of a file's bytes: exact copies; the strongest evidence a report can cite."""
from __future__ import annotations

from csadetect.signals.digest import DigestSignal


class Sha256Signal(DigestSignal):
    name = "sha256"
    evidence = 0
    # python-threatexchange's VideoSHA256Signal, ThreatExchange's HASH_SHA256
    aliases = ("sha-256", "video_sha256", "photo_sha256", "hash_sha256", "sha256sum")
    threatexchange = "video_sha256"
