"""csadetect: open, privacy-preserving CSA detection on Apache Beam.

One import name for everything that runs; its sub-packages are layered and import one way
(``docs/architecture.md``, enforced by ``.importlinter``). This package itself holds only the
thin shell: the command line (:mod:`csadetect.cli`) and the embedded demo (:mod:`csadetect.demo`).
"""
