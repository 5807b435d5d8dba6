"""benchmarks/bench_robustness.py: its "previous release" columns use the previous release's own
embedding (benchmarks/previous-release/embedding, embedding-ref-0.1 at 0.9835), its "this release"
columns the configured one, side by side in one run."""
from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from benchmarks import bench_robustness as br  # noqa: E402
from csadetect.media import synth  # noqa: E402


def test_previous_release_columns_use_the_previous_release_model():
    emb = br.Embedder()
    assert emb.previous_model.version == "embedding-ref-0.1"
    assert emb.model.version != emb.previous_model.version
    assert br.PREVIOUS_RELEASE_THRESHOLD == 0.9835
    data = synth.jpeg_bytes(synth.synthetic_image(4242))
    previous_rows, rows = emb.original(data)
    assert len(rows) == len(previous_rows) + 9  # this release adds the 9 region rows
    query = br.Query(data, emb)
    # the picture itself: each release's model finds it against its own rows ...
    assert (query.vectors @ previous_rows.T).max() > 0.999
    assert (query.vectors2 @ rows.T).max() > 0.999
    # ... and the two releases' vectors come from different models
    assert (query.vectors2[:1] @ previous_rows[:1].T).max() < 0.99
