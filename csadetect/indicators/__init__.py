"""Known-material indicators (DESIGN.md §4): the EU Centre's signed indicator database.

* :mod:`csadetect.indicators.rows` -- the :class:`~csadetect.indicators.rows.Indicator` record, CSV / JSON Lines /
  hash-list readers with one-line errors, and :func:`~csadetect.indicators.rows.from_media`.
* :mod:`csadetect.indicators.formats` -- other tools' hash lists in and out (threatexchange/HMA CSV, plain lists,
  mapped CSV), per-row refusals with line numbers; docs/indicators.md.
* :mod:`csadetect.core.keys` -- Ed25519 keys, sign / verify.
* :mod:`csadetect.indicators.snapshot` -- versioned, signed Parquet snapshots and deltas on any Beam
  filesystem: build, verify + load, diff, info.
* :mod:`csadetect.indicators.index` -- :class:`~csadetect.indicators.index.IndicatorIndex`: one index per signal
  type (:mod:`csadetect.signals`: PDQ / vPDQ, exact MD5 / SHA-1 / SHA-256, embeddings), deltas applied
  without a full rebuild.
* :mod:`csadetect.cli.indicators` -- ``csadetect indicators ...`` and ``csadetect match``.
"""
