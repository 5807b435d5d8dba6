"""Video indicators made from media hash every frame (``match.video_indicator_seconds_per_hash``).

An upload is hashed at its key frames (about one a second), wherever they fall. A copy that starts
a fraction of a second later than the original, or an excerpt of it, has no key frame on a frame
that an indicator sampled once a second kept, so such an indicator misses it (issue 17;
benchmarks/video.md). These tests build the indicators as ``indicators from-media`` does
(:func:`csadetect.indicators.rows.from_media`), hash the copies as the pipeline's hash stage does,
and match them through the index, with the default and with the old 1 s sampling.
"""
from __future__ import annotations

import subprocess

import pytest

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.media.hashing import VideoHashes, file_digests
from csadetect.indicators.rows import from_media
from tests.conftest import generated_pans, video_through_hash_stage
from tests.test_indicators_index import _index

SEEDS = (41, 42)
EVERY_FRAME = MatchSettings()  # the default
ONE_SECOND = MatchSettings(video_indicator_seconds_per_hash=1.0)  # the release before


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def _upload(src, dst, start: float, seconds: float = 0.0) -> None:
    """``src`` from ``start`` (for ``seconds``, or to its end), re-encoded at SD with a key frame each second."""
    span = ["-t", seconds] if seconds else []
    _ffmpeg("-ss", start, *span, "-i", src, "-vf", "scale=-2:240", "-an", "-c:v", "libx264", "-preset", "veryfast",
            "-crf", 23, "-force_key_frames", "expr:gte(t,n_forced*1)", "-pix_fmt", "yuv420p", dst)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two generated pans (6 s, 30 fps); the first cut 0.5 s and 0.25 s later, and a 3 s excerpt of it."""
    out = generated_pans(tmp_path_factory, "sampling", SEEDS, seconds=6, size=(480, 270))
    for name, start, seconds in (("cut 0.5 s", 0.5, 0), ("cut 0.25 s", 0.25, 0), ("excerpt", 1.7, 3)):
        out[name] = out[SEEDS[0]].parent / f"{name.replace(' ', '-')}.mp4"
        _upload(out[SEEDS[0]], out[name], start, seconds)
    return out


_made: dict = {}  # (clips' folder, sampling) -> (rows, index): each set of indicators is made once


def _found(clips, settings: MatchSettings, name: str) -> set[str]:
    """The notes (file names) of the vpdq indicators that the upload ``name`` matches."""
    key = (clips[SEEDS[0]].parent, settings.video_indicator_seconds_per_hash)
    if key not in _made:
        rows = from_media([str(clips[s]) for s in SEEDS], settings)
        _made[key] = rows, _index(rows)
    rows, index = _made[key]
    frames = video_through_hash_stage(clips[name].read_bytes(), settings)
    matches = index.match_video(VideoHashes(file_digests(str(clips[name])), tuple(frames)))
    notes = {r.indicator_id: r.note for r in rows}
    return {notes[m.indicator_id] for m in matches if m.kind == "vpdq"}


@pytest.mark.parametrize("name", ["cut 0.5 s", "cut 0.25 s", "excerpt"])
def test_a_copy_that_starts_elsewhere_matches_an_every_frame_indicator(clips, name):
    assert _found(clips, EVERY_FRAME, name) == {clips[SEEDS[0]].name}  # its own source, not the other pan


@pytest.mark.parametrize("name", ["cut 0.5 s", "cut 0.25 s", "excerpt"])
def test_an_indicator_sampled_once_a_second_misses_it(clips, name):
    assert _found(clips, ONE_SECOND, name) == set()


def test_each_pan_still_matches_itself_only(clips):
    for seed in SEEDS:
        assert _found(clips, EVERY_FRAME, seed) == {clips[seed].name}


def test_an_every_frame_indicator_keeps_each_distinct_frame(clips):
    (every,) = [r for r in from_media([str(clips[SEEDS[0]])], EVERY_FRAME) if r.kind == "vpdq"]
    (sampled,) = [r for r in from_media([str(clips[SEEDS[0]])], ONE_SECOND) if r.kind == "vpdq"]
    assert len(sampled.value.split()) <= 7  # 6 s at 1 s
    assert len(every.value.split()) > 100  # 180 frames of a moving picture, repeats kept once
    assert set(sampled.value.split()) <= set(every.value.split())


def test_the_setting_defaults_to_every_frame_and_refuses_a_negative_interval():
    assert load_settings().match.video_indicator_seconds_per_hash == 0.0
    with pytest.raises((ConfigError, ValueError)) as err:
        MatchSettings(video_indicator_seconds_per_hash=-1)
    assert "video_indicator_seconds_per_hash" in str(err.value)
