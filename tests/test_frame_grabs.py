"""A frame grab of a known video is found among the video indicators' frames (``match.image_video_frames``).

A still taken from a known video and shared as a picture (a thumbnail, a screenshot of a player)
used to be looked up among picture indicators only, so it was never compared with the video's
frames (issue 17; benchmarks/frame-grabs.md). These tests make video indicators as ``indicators
from-media`` does (every frame), grab frames with the ffmpeg CLI, hash them as the pipeline hashes
an image and match them through the index; and check that Decide sends such a match to review.
"""
from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.indicators.rows import from_media
from csadetect.media import synth
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import preprocessor
from csadetect.signals import get
from csadetect.signals.vpdq import PictureProbe, VpdqSignal
from csadetect.transforms.decide import needs_review
from tests.conftest import generated_pans
from tests.test_indicators_index import _index

SEEDS = (51, 52)


def _grab(video, at: float, path, scale: float = 1.0, quality: int = 85) -> bytes:
    """The frame shown at ``at`` s, scaled, as a JPEG."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(at), "-i", str(video), "-frames:v", "1",
                    "-vf", f"scale=iw*{scale}:-2", "-q:v", "3", str(path.with_suffix(".png"))], check=True)
    Image.open(path.with_suffix(".png")).convert("RGB").save(path, quality=quality)
    return path.read_bytes()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Video indicators of two generated pans (6 s, every frame, as from-media makes them)."""
    pans = generated_pans(tmp_path_factory, "grabs", SEEDS, seconds=6, size=(480, 270))
    rows = from_media([str(pans[s]) for s in SEEDS], MatchSettings())
    return pans, rows, _index(rows)


def _found(world, data: bytes, settings=MatchSettings()) -> list:
    pans, rows, index = world
    if settings != MatchSettings():
        index = _index(rows, image_video_frames=settings.image_video_frames)
    notes = {r.indicator_id: r.note for r in rows}
    hashes, _ = hash_image_with_views(data, preprocess=preprocessor(settings))
    return [(m.kind, notes[m.indicator_id], m.distance) for m in index.match_image(hashes)]


@pytest.mark.parametrize("at, scale, quality", [(1.37, 1.0, 85), (4.05, 0.5, 60), (2.5, 1.5, 90)])
def test_a_frame_grab_matches_its_video_and_no_other(world, tmp_path, at, scale, quality):
    data = _grab(world[0][SEEDS[0]], at, tmp_path / "grab.jpg", scale, quality)
    assert _found(world, data) == [("vpdq", f"pan-{SEEDS[0]}.mp4", 0.0)]


def test_switched_off_a_picture_is_not_looked_up_among_videos(world, tmp_path):
    data = _grab(world[0][SEEDS[1]], 3.1, tmp_path / "grab.jpg")
    assert _found(world, data) == [("vpdq", f"pan-{SEEDS[1]}.mp4", 0.0)]
    assert _found(world, data, MatchSettings(image_video_frames=False)) == []


def test_an_unrelated_picture_matches_no_video(world):
    assert _found(world, synth.jpeg_bytes(synth.synthetic_image(SEEDS[0] + 1000, (480, 270)))) == []


def test_explain_gives_the_nearest_frame_in_bits(world, tmp_path):
    pans, rows, index = world
    data = _grab(pans[SEEDS[0]], 2.2, tmp_path / "grab.jpg")
    hashes, _ = hash_image_with_views(data, preprocess=preprocessor(MatchSettings()))
    (match,) = index.match_image(hashes)
    value = next(r.value for r in rows if r.indicator_id == match.indicator_id)
    said = get("vpdq").explain(hashes, value, MatchSettings())
    assert said["bits"] <= MatchSettings().pdq_threshold
    assert said["view"] == "original" and said["transform"] == "original"
    assert 1 <= said["indicator_frames_matched"] < said["indicator_frames"]


def _matched(kind: str, matches) -> SimpleNamespace:
    return SimpleNamespace(matches=matches, item=SimpleNamespace(event=SimpleNamespace(kind=kind)))


def test_a_frame_grab_goes_to_review_a_video_match_confirms(world, tmp_path):
    data = _grab(world[0][SEEDS[0]], 1.37, tmp_path / "grab.jpg")
    hashes, _ = hash_image_with_views(data, preprocess=preprocessor(MatchSettings()))
    matches = world[2].match_image(hashes)
    assert [m.kind for m in matches] == ["vpdq"]
    assert needs_review(_matched("image", matches), MatchSettings())
    assert not needs_review(_matched("video", matches), MatchSettings())  # the same rows, matched by a video


def test_the_probe_of_an_image_is_its_pdq_lookup():
    hashes, _ = hash_image_with_views(synth.jpeg_bytes(synth.synthetic_image(7, (320, 240))))
    probe = VpdqSignal().probe(hashes, MatchSettings())
    assert isinstance(probe, PictureProbe)
    assert list(probe.hashes) == get("pdq").probe(hashes, MatchSettings())
    assert VpdqSignal().probe(hashes, MatchSettings(image_video_frames=False)) is None


def test_the_setting_is_a_boolean(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("match:\n  image_video_frames: sometimes\n")
    with pytest.raises(ConfigError, match="image_video_frames"):
        load_settings(str(bad))
