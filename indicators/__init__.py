"""Known-material indicators (DESIGN.md §4): the EU Centre's signed indicator database.

* :mod:`indicators.rows` -- the :class:`~indicators.rows.Indicator` record, CSV / JSON Lines /
  hash-list readers with one-line errors, and :func:`~indicators.rows.from_media`.
* :mod:`indicators.signing` -- Ed25519 keys, sign / verify.
* :mod:`indicators.snapshot` -- versioned, signed Parquet snapshots and deltas on any Beam
  filesystem: build, verify + load, diff, info.
* :mod:`indicators.index` -- :class:`~indicators.index.IndicatorIndex`: FAISS PDQ / vPDQ and exact
  MD5 / SHA-256 matching, deltas applied without a full rebuild.
* :mod:`indicators.cli` -- ``csadetect indicators ...`` and ``csadetect match``.
"""
