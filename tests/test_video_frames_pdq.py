"""A known picture shown in a video is found among the PDQ rows of known pictures (``match.video_frames_pdq``).

A slideshow turns pictures into a video; a video used to be looked up among video indicators
(vPDQ) and digests only, so a known picture in one was never compared (issue 17;
benchmarks/slideshow.md). These tests build picture indicators as ``indicators from-media``
does, make slideshows of generated pictures of several shapes with the ffmpeg CLI (each fitted into
the frame on black bars of its own), hash them as the pipeline's hash stage does and match them
through the index.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.indicators.rows import from_media
from csadetect.media import synth
from csadetect.media.hashing import MediaError, VideoFrame, VideoHashes, hash_video
from csadetect.signals import for_content, for_query, get
from csadetect.signals.pdq import PdqSignal
from csadetect.signals.video_frames import frame_groups, picture_hashes
from tests.conftest import video_through_hash_stage
from tests.test_indicators_index import _index

FPS = 10
SIZE = (640, 360)
# the pictures of the slideshows: seed -> size (portrait, square, landscape narrower than 16:9)
PICTURES = {71: (300, 420), 72: (400, 400), 73: (480, 360), 74: (360, 480), 75: (500, 400)}
KNOWN = (72, 74)  # made indicators


def _frame(seed: int) -> Image.Image:
    """The picture ``seed`` fitted into the frame on black bars."""
    img = synth.synthetic_image(seed, PICTURES[seed])
    scale = min(SIZE[0] / img.width, SIZE[1] / img.height)
    pic = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    frame = Image.new("RGB", SIZE)
    frame.paste(pic, ((SIZE[0] - pic.width) // 2, (SIZE[1] - pic.height) // 2))
    return frame


def _slideshow(path, seeds, sparse: bool = False) -> None:
    """Each picture 2 s, H.264 with a key frame each second, or (``sparse``) with the first frame
    the only key frame (no key frame at a cut either), which the hash stage cannot sample from."""
    raw = b"".join(_frame(s).tobytes() * (2 * FPS) for s in seeds)
    keys = ["-g", "250", "-sc_threshold", "0"] if sparse else ["-g", str(FPS)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE[0]}x{SIZE[1]}",
                    "-framerate", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26",
                    *keys, "-pix_fmt", "yuv420p", str(path)], input=raw, check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Picture indicators of KNOWN (PNG files, as from-media reads them) and three slideshows: the
    first known picture third of four, the second known one among others with one key frame
    (decoded every frame), and one of unknown pictures only."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg CLI")
    d = tmp_path_factory.mktemp("slideshow")
    pictures = []
    for seed in KNOWN:
        pictures.append(str(d / f"known-{seed}.png"))
        synth.synthetic_image(seed, PICTURES[seed]).save(pictures[-1])
    rows = from_media(pictures, MatchSettings())
    clips = {"first": d / "first.mp4", "sparse": d / "sparse.mp4", "unknown": d / "unknown.mp4"}
    _slideshow(clips["first"], (71, 73, 72, 75))
    _slideshow(clips["sparse"], (75, 74, 71), sparse=True)
    _slideshow(clips["unknown"], (71, 73, 75))
    return rows, _index(rows), clips


def _frames(clips, name, settings=MatchSettings()) -> tuple[VideoFrame, ...]:
    return tuple(video_through_hash_stage(clips[name].read_bytes(), settings))


def _found(media, name, settings=MatchSettings()) -> list:
    rows, index, clips = media
    notes = {r.indicator_id: r.note for r in rows}
    index = index if settings == MatchSettings() else _index(rows, **{"video_frames_pdq": settings.video_frames_pdq})
    matches = index.match_video(VideoHashes({}, _frames(clips, name, settings)))
    return [(m.kind, notes[m.indicator_id]) for m in matches]


def test_a_known_picture_in_a_slideshow_is_found(media):
    assert _found(media, "first") == [("pdq", "known-72.png")]


def test_sparse_key_frames_decode_every_frame_and_still_find_it(media):
    assert _found(media, "sparse") == [("pdq", "known-74.png")]
    sampled = {f.frame for f in _frames(media[2], "sparse")}
    assert len(sampled) >= 5  # one a second of the 6 s: the every-frame decoder, not the one key frame


def test_unknown_pictures_match_nothing(media):
    assert _found(media, "unknown") == []


def test_switched_off_a_video_is_not_looked_up_among_pictures(media):
    off = MatchSettings(video_frames_pdq=False)
    assert _found(media, "first", off) == []
    assert not any(f.framed for f in _frames(media[2], "first", off))  # nor hashed for it


def test_the_picture_is_found_by_its_own_bars_only(media):
    """The pictures have different shapes, so no box of the whole video fits the known one: without
    the framed view (whole frames and the video's box, as vPDQ hashes them) it is not found."""
    rows, index, clips = media
    frames = _frames(clips, "first")
    assert any(f.framed for f in frames)
    unframed = VideoHashes({}, tuple(f for f in frames if not f.framed))
    assert index.match_video(unframed) == []


def test_explain_names_the_frame_and_its_view(media):
    rows, index, clips = media
    hashes = VideoHashes({}, _frames(clips, "first"))
    (match,) = index.match_video(hashes)
    value = next(r.value for r in rows if r.indicator_id == match.indicator_id)
    said = get("pdq").explain(hashes, value, MatchSettings())
    assert said["view"] == "framed"
    assert 4.0 <= said["timestamp"] < 6.0  # the third picture, shown from 4 s to 6 s
    assert said["quality"] >= MatchSettings().quality_gate


def test_a_video_frame_match_confirms_as_a_picture_match(media):
    (match,) = _index(media[0]).match_video(VideoHashes({}, _frames(media[2], "first")))
    assert match.distance <= MatchSettings().auto_confirm_distance
    assert get("pdq").auto_confirms(match, MatchSettings(), None)


def test_the_frame_limit_counts_frames_not_their_views(media):
    """Views of a frame (cropped, cleaned, framed) are one hashed frame for ``limits.max_video_frames``."""
    data = media[2]["first"].read_bytes()
    frames = hash_video(data, framed=True).frames
    numbers = len({f.frame for f in frames})
    assert len(frames) > numbers + 2
    # fewer than its hashes, more than its frames (and than ffprobe's estimate of them): accepted
    assert hash_video(data, framed=True, max_frames=len(frames) - 1).frames == frames
    with pytest.raises(MediaError, match="hashed frames"):
        hash_video(data, framed=True, max_frames=numbers - 1)


# ------------------------------------------------------------------ units, no video


def _vf(frame, code, quality=80, **view) -> VideoFrame:
    return VideoFrame(frame=frame, quality=quality, pdq=bytes([code]) * 32, timestamp=frame / 10, **view)


def test_framed_hashes_are_pictures_only_not_vpdq_frames():
    frames = [_vf(0, 1), _vf(0, 2, framed=True), _vf(10, 3), _vf(10, 4, cropped=True), _vf(20, 5, quality=10),
              _vf(20, 6, framed=True)]
    assert frame_groups(frames, 50) == [(bytes([1]) * 32,), (bytes([3]) * 32, bytes([4]) * 32)]
    assert picture_hashes(frames, 50) == [bytes([c]) * 32 for c in (1, 3, 4, 2, 6)]


def test_a_flat_picture_between_bars_stays_out_of_the_picture_lookup():
    """frame_groups' rule (a frame whose picture inside the video's bars is below the gate is left
    out whole) holds for the lookup among pictures too; a framed hash below the gate is left out."""
    frames = [_vf(0, 1), _vf(0, 2, quality=20, cropped=True), _vf(0, 3, quality=20, framed=True), _vf(10, 4)]
    assert picture_hashes(frames, 50) == [bytes([4]) * 32]


def test_pdq_is_looked_up_for_videos_but_not_made_from_them():
    assert PdqSignal.name in {s.name for s in for_query("video")}
    assert PdqSignal.name not in {s.name for s in for_content("video")}  # from-media makes no PDQ row of a video
    hashes = VideoHashes({}, (_vf(0, 1), _vf(0, 2, framed=True)))
    assert PdqSignal().probe(hashes, MatchSettings()) == [bytes([1]) * 32, bytes([2]) * 32]
    assert PdqSignal().probe(hashes, MatchSettings(video_frames_pdq=False)) is None
    assert PdqSignal().probe(VideoHashes({}, (_vf(0, 1, quality=10),)), MatchSettings()) is None


def test_the_setting_is_a_boolean(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("match:\n  video_frames_pdq: maybe\n")
    with pytest.raises(ConfigError, match="video_frames_pdq"):
        load_settings(str(bad))
