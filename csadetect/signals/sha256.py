"""SHA-256 of a file's bytes: exact copies; the strongest evidence a report can cite."""
from __future__ import annotations

from csadetect.signals.digest import DigestSignal


class Sha256Signal(DigestSignal):
    name = "sha256"
    evidence = 0
