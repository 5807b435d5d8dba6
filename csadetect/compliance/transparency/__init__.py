"""``csadetect transparency``: the id-free transparency report (Art. 83 data, Art. 84 report).

:func:`collect` (:mod:`.summary`) aggregates a period ``[start, end)`` of the stores described in
``docs/data.md`` (:mod:`.sources`) into an id-free summary; :func:`render` (:mod:`.documents`)
writes ``transparency.html``, ``transparency.pdf``, the chart PNGs (:mod:`.charts`) and
``summary.json``, both documents built from the same tables (:mod:`.tables`). The command line
is ``csadetect.cli.transparency``; see ``docs/transparency.md``.
"""
from csadetect.compliance.transparency.summary import collect
from csadetect.compliance.transparency.documents import TEMPLATES, render
from csadetect.compliance.transparency.sources import Sources, TransparencyError

__all__ = ["Sources", "TEMPLATES", "TransparencyError", "collect", "render"]
