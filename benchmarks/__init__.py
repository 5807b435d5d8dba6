"""Benchmarks of csadetect: hashing and matching against Meta's threatexchange (``bench_known``),
robustness to edits (``bench_robustness``), model inference (``bench_models``), report protection
costs (``bench_reports``) and worker memory sizing (``bench_sizing``).

Run them from the repository root as modules, e.g. ``python -m benchmarks.bench_known --quick``;
``make bench`` runs the first three. Results and the commands behind every table are in
``benchmarks/README.md``. Not part of the ``csadetect`` wheel; they import ``csadetect`` and
``training`` (the robustness set), never the other way round.
"""
