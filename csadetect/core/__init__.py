"""Foundations every layer uses, one helper per concern: time and clocks (:mod:`.timeutil`),
identifiers (:mod:`.ids`), PEM keys and Ed25519 (:mod:`.keys`), files on any Beam filesystem
(:mod:`.fs`) and id-free stats records (:mod:`.stats`). Imports nothing else of the project."""
