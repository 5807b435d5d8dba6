"""``benchmarks.cache.cached``: a benchmark's work folder is built once per set of parameters."""
from __future__ import annotations

from benchmarks.cache import cached


def test_built_once_then_read_back(tmp_path):
    calls = []

    def build(work):
        calls.append(work)
        (work / "data.txt").write_text("x")
        return {"files": 1}

    work = tmp_path / "w"
    assert cached(work, {"n": 3}, build) == {"files": 1}
    assert cached(work, {"n": 3}, build) == {"files": 1}
    assert calls == [work]
    assert (work / "data.txt").read_text() == "x"


def test_other_parameters_rebuild_from_empty(tmp_path):
    work = tmp_path / "w"
    cached(work, {"n": 3}, lambda w: (w / "old.txt").write_text("old") and {"n": 3})

    def build(w):
        assert not (w / "old.txt").exists(), "the folder must be emptied before a rebuild"
        return {"n": 4}

    assert cached(work, {"n": 4}, build) == {"n": 4}
    assert cached(work, {"n": 4}, lambda w: {"n": "not called"}) == {"n": 4}


def test_a_failed_build_is_not_recorded(tmp_path):
    work = tmp_path / "w"

    def broken(w):
        raise RuntimeError("disk full")

    try:
        cached(work, {"n": 1}, broken)
    except RuntimeError:
        pass
    assert not (work / "meta.json").exists()
    assert cached(work, {"n": 1}, lambda w: {"ok": True}) == {"ok": True}
