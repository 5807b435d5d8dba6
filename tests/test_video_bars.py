"""Letterboxed and pillarboxed video (issue 17, item 2): the bar finder on generated frames
(:mod:`csadetect.media.letterbox`), the decoder hashing frames whole and cropped, Meta's test
videos matching across their bars in both directions (with the unrelated ones as negatives), and
the two-share match rule of :mod:`csadetect.signals.vpdq` with its settings.
Costs and recall per edit are in benchmarks/video.md (``python -m benchmarks.bench_video``)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.media import hashing, letterbox, synth, vpdq_worker
from csadetect.media.box import Box
from csadetect.media.hashing import VideoFrame, hash_video, hash_video_file
from csadetect.media.preprocess import DEFAULT, trim_box
from csadetect.signals.vpdq import VpdqIndex, VpdqSignal, frame_groups
from tests.conftest import need_shared, video_through_hash_stage

W, H = 320, 240


def _scene(seed: int, size=(W, H)) -> np.ndarray:
    return np.asarray(synth.synthetic_image(seed, size).convert("RGB"))


def _boxed(picture: np.ndarray, box: Box, colour=(0, 0, 0), size=(W, H)) -> bytes:
    """``picture`` resized into ``box`` of a ``size`` frame filled with ``colour``."""
    from PIL import Image

    frame = np.empty((size[1], size[0], 3), dtype=np.uint8)
    frame[:] = colour
    left, top, right, bottom = box
    frame[top:bottom, left:right] = np.asarray(Image.fromarray(picture).resize((right - left, bottom - top)))
    return frame.tobytes()


def _video_box(frames: list[bytes], size=(W, H)):
    bars = letterbox.VideoBars(*size)
    for f in frames:
        bars.add(f)
    return bars.box()


@pytest.mark.parametrize("box, colour", [
    ((0, 30, W, H - 30), (0, 0, 0)),  # letterbox, black
    ((40, 0, W - 40, H), (128, 128, 128)),  # pillarbox, grey
    ((100, 0, 220, H), (16, 16, 16)),  # a portrait clip in a landscape frame (~0.4 of the area)
])
def test_bars_are_found_once_per_video(box, colour):
    frames = [_boxed(_scene(seed), box, colour) for seed in range(6)]
    assert _video_box(frames) == box


def test_a_small_logo_in_a_bar_is_tolerated():
    box = (48, 0, W - 48, H)
    frames = []
    for seed in range(4):
        frame = np.frombuffer(_boxed(_scene(seed), box), dtype=np.uint8).reshape(H, W, 3).copy()
        frame[100:108, 8:40] = 255  # a logo 8 px high in the left bar (3% of its columns)
        frames.append(frame.tobytes())
    assert _video_box(frames) == box


def test_a_dark_scene_without_bars_keeps_its_full_frame():
    """A slow pan over a night scene: dark, grainy, nearly black in places, but no line stays one
    colour from frame to frame."""
    rng = np.random.default_rng(0)
    scene = _scene(7, (W + 80, H + 40)).astype(np.float32) * 0.1
    frames = []
    for i in range(8):
        dark = scene[4 * i: 4 * i + H, 8 * i: 8 * i + W] + rng.normal(0, 2.0, (H, W, 3))
        frames.append(dark.clip(0, 255).astype(np.uint8).tobytes())
    assert _video_box(frames) is None


def test_fades_and_title_cards_say_nothing_about_bars():
    box = (0, 30, W, H - 30)
    black = bytes(W * H * 3)
    card = np.zeros((H, W, 3), dtype=np.uint8)
    card[110:130, 120:200] = 255  # white title text on black: its box is under MIN_AREA of the frame
    frames = [black, card.tobytes(), _boxed(_scene(1), box), _boxed(_scene(2), box)]
    assert _video_box(frames) == box
    assert _video_box([black, card.tobytes()]) is None  # nothing informative: no crop


def test_frames_that_disagree_give_no_box():
    frames = [_boxed(_scene(1), (0, 30, W, H - 30)), _boxed(_scene(2), (0, 30, W, H - 30)),
              _scene(3).tobytes(), _scene(4).tobytes(), _scene(5).tobytes()]
    assert _video_box(frames) is None  # the union is the whole frame


def _washed(seed: int, box: Box, grey=(128, 128, 128)) -> bytes:
    """``_scene(seed)`` with its outer 8% washed 80% towards ``grey``, padded into ``box`` with that
    grey: a bar beside a picture edge of nearly its own colour (Meta's pattern clip padded grey)."""
    picture = _scene(seed).astype(np.float32)
    h, w = picture.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[:, : w // 12] = mask[:, -w // 12:] = True
    mask[: h // 12] = mask[-h // 12:] = True
    picture[mask] = 0.8 * np.array(grey, np.float32) + 0.2 * picture[mask]
    return _boxed(picture.round().astype(np.uint8), box, grey)


def _finder(frames: list[bytes], size=(W, H)) -> letterbox.VideoBars:
    bars = letterbox.VideoBars(*size)
    for f in frames:
        bars.add(f)
    return bars


def test_bars_beside_a_picture_edge_of_their_own_colour_are_told_by_time():
    """The peeler needs a sharp edge in one frame; here the picture's edge is within a few grey
    levels of the bar. Over the key frames the bar stays put while the picture changes: the still
    box finds it, to within a grid cell."""
    box = (60, 0, W - 60, H)
    bars = _finder([_washed(seed, box) for seed in range(8)])
    assert bars.peeled_box() is None
    found = bars.still_box()
    assert found is not None and bars.box() == found
    step = bars.grid.step
    assert all(abs(a - b) <= step for a, b in zip(found, box))


def test_a_watermark_in_a_still_bar_is_tolerated():
    """A static, half-opaque watermark in a grey bar (3% of the bar's columns' height): the still
    lines tolerate it as the peeler tolerates a logo, so the bar is not cut off at the watermark."""
    box = (60, 0, W - 60, H)
    frames = []
    for seed in range(8):
        frame = np.frombuffer(_washed(seed, box), dtype=np.uint8).reshape(H, W, 3).copy()
        frame[200:208, W - 40: W - 24] = (0.6 * 255 + 0.4 * frame[200:208, W - 40: W - 24]).astype(np.uint8)
        frames.append(frame.tobytes())
    bars = _finder(frames)
    found = bars.still_box()
    assert found is not None and bars.box() == found
    assert all(abs(a - b) <= bars.grid.step for a, b in zip(found, box))


def test_still_bars_need_a_moving_picture():
    box = (60, 0, W - 60, H)
    still = _finder([_washed(3, box)] * 8)  # a still shown as video: nothing tells the bar from the picture
    assert still.still_box() is None
    plain = _finder([_scene(seed).tobytes() for seed in range(8)])  # changing pictures, no bars
    assert plain.still_box() is None and plain.box() is None


@pytest.mark.parametrize("box, colour", [((0, 30, W, H - 30), (0, 0, 0)), ((40, 0, W - 40, H), (128, 128, 128))])
def test_still_bars_agree_with_the_peeled_ones(box, colour):
    bars = _finder([_boxed(_scene(seed), box, colour) for seed in range(6)])
    assert bars.peeled_box() == box == bars.box()  # the peeler's box wins where it has one
    assert all(abs(a - b) <= bars.grid.step for a, b in zip(bars.still_box(), box))


def _half_washed(shift: int, box: Box, grey=(128, 128, 128)) -> bytes:
    """One frame of a slow pan (``shift`` px) over ``_scene(5)``, its bottom twelfth washed 80%
    towards ``grey`` and the whole padded into ``box`` with that grey: a sharp top bar edge and a
    bottom one the peeler cannot see (Meta's ``doorknob`` padded with grey)."""
    from PIL import Image

    picture = _scene(5, (W + 16, H)).astype(np.float32)[:, shift: shift + W]
    h = picture.shape[0]
    picture[-h // 12:] = 0.8 * np.array(grey, np.float32) + 0.2 * picture[-h // 12:]
    left, top, right, bottom = box
    frame = np.empty((H, W, 3), dtype=np.uint8)
    frame[:] = grey
    frame[top:bottom, left:right] = np.asarray(
        Image.fromarray(picture.round().astype(np.uint8)).resize((right - left, bottom - top)))
    return frame.tobytes()


def test_a_side_the_peeler_misses_is_completed_by_the_still_lines():
    """The peeler finds the top bar only; the picture barely moves, so the still box alone says
    nothing; the still lines agree with the peeled top bar, so the bottom one is theirs."""
    box = (0, 40, W, H - 40)
    bars = _finder([_half_washed(2 * i, box) for i in range(6)])
    peeled = bars.peeled_box()
    assert peeled is not None and peeled[1] == box[1] and peeled[3] == H  # the bottom bar is missed
    assert bars.still_box() is None  # a slow pan: too little motion to tell bars by time alone
    found = bars.box()
    assert found[:3] == peeled[:3]
    # at most the washed strip (80% the bar's grey, barely moving) is taken for bar too
    washed = (box[3] - box[1]) // 12
    assert box[3] - washed - bars.grid.step <= found[3] <= box[3] + bars.grid.step


def test_still_lines_that_contradict_a_peeled_bar_complete_nothing():
    """A small mark that moves in every frame in the top bar: the peeler tolerates it, the still
    lines do not see that bar, so they are not trusted for the bottom one either."""
    box = (0, 40, W, H - 40)
    frames = []
    for i in range(6):
        frame = np.frombuffer(_half_washed(2 * i, box), dtype=np.uint8).reshape(H, W, 3).copy()
        frame[18:21, 40 * i: 40 * i + 12] = 255  # a small mark in the bar, at a new place each frame
        frames.append(frame.tobytes())
    bars = _finder(frames)
    peeled = bars.peeled_box()
    assert peeled is not None and peeled[3] == H
    assert bars.still_lines() is not None and bars.still_lines()[1] < box[1] - bars.grid.step
    assert bars.box() == peeled


def test_the_gate_is_trim_boxs_first_test():
    """A frame whose outer lines all fail :func:`letterbox.outer_uniform` is one trim_box leaves
    whole, so skipping numpy for it changes nothing; and the thresholds are the peeler's."""
    assert (letterbox.TOL, letterbox.LINE_FRAC, letterbox.MIN_STD) == (DEFAULT.tol, DEFAULT.line_frac, DEFAULT.min_std)
    rng = np.random.default_rng(1)
    for seed in range(12):
        frame = _scene(seed, (W + seed, H + 2 * seed))
        if seed % 3 == 0:
            frame = frame.copy()
            frame[: 2 + seed] = rng.integers(0, 30, 3)  # a uniform top band of its own
        h, w = frame.shape[:2]
        for step in (1, 2, 3):
            gate = letterbox.outer_uniform(frame.tobytes(), w, h, step)
            sub = np.ascontiguousarray(frame[::step, ::step])
            if not gate:
                assert trim_box(sub) == (0, 0, sub.shape[1], sub.shape[0])
            if seed % 3 == 0:
                assert gate


def _filled(picture: np.ndarray, size=(W, H), blur: float = 1 / 30) -> tuple[bytes, Box]:
    """``picture`` centred, at its own aspect and the frame's full width or height, on a blurred,
    zoomed copy of itself filling a ``size`` frame (the "blur background" of short-video apps)."""
    from PIL import Image, ImageFilter

    img = Image.fromarray(picture)
    fw, fh = size
    scale = min(fw / img.width, fh / img.height)
    w, h = round(img.width * scale), round(img.height * scale)
    cover = max(fw / img.width, fh / img.height)
    bg = img.resize((round(img.width * cover) + 1, round(img.height * cover) + 1)).crop((0, 0, fw, fh))
    bg = bg.filter(ImageFilter.GaussianBlur(blur * max(fw, fh)))
    at = ((fw - w) // 2, (fh - h) // 2)
    bg.paste(img.resize((w, h)), at)
    return np.asarray(bg).tobytes(), (at[0], at[1], at[0] + w, at[1] + h)


@pytest.mark.parametrize("size, picture", [((360, 640), (320, 240)), ((640, 360), (240, 320)), ((480, 480), (320, 180))])
def test_a_blurred_fill_is_found_once_per_video(size, picture):
    """A landscape clip in a portrait frame (and the other way round, and in a square) on a blurred
    copy of itself: the box of the picture, within the finder's few px, though no line is uniform."""
    frames, boxes = [], set()
    for seed in range(6):
        frame, box = _filled(_scene(seed, picture), size)
        frames.append(frame)
        boxes.add(box)
    (true,) = boxes
    found = _video_box(frames, size)
    assert found is not None and max(abs(a - b) for a, b in zip(found, true)) <= 0.02 * max(size), (found, true)
    frame = frames[0]
    assert not letterbox.outer_uniform(frame, *size, 1) and letterbox.outer_blurred(frame, *size, 1)


def test_a_soft_frame_edge_without_a_fill_keeps_its_full_frame():
    """Frames blurred all over, or only softly at the edges (out of focus), with no picture in front
    of a fill: no box."""
    from PIL import Image, ImageFilter

    soft, vignette = [], []
    for seed in range(6):
        img = Image.fromarray(_scene(seed))
        soft.append(np.asarray(img.filter(ImageFilter.GaussianBlur(8))).tobytes())
        blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(12)), np.float64)
        ramp = np.clip((np.abs(np.linspace(-1, 1, H)) - 0.2) / 0.4, 0, 1)[:, None, None]
        vignette.append((blurred * ramp + _scene(seed) * (1 - ramp)).round().astype(np.uint8).tobytes())
    assert _video_box(soft) is None
    assert _video_box(vignette) is None


def test_the_blur_gate_uses_the_fill_finders_thresholds():
    assert (letterbox.FILL_STEP, letterbox.FILL_SHARE) == (DEFAULT.fill_step, DEFAULT.fill_share)


def test_crop_takes_the_box_rows():
    frame = np.arange(W * H * 3, dtype=np.uint32).astype(np.uint8).reshape(H, W, 3)
    assert letterbox.crop(frame.tobytes(), W, (10, 20, 50, 60)) == frame[20:60, 10:50].tobytes()


# --- Meta's test videos ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meta_videos():
    videos = need_shared("vpdq", "videos")
    if not (synth.ffmpeg_available() and hashing.shutil.which("ffprobe")):
        pytest.skip("ffmpeg/ffprobe CLI not installed (make sysdeps installs them)")
    return {p.stem: p for p in sorted(videos.glob("*.mp4"))}


def _decisions(queries: dict, indicators: dict, settings: MatchSettings = MatchSettings()) -> set:
    signal, names = VpdqSignal(), list(indicators)
    values = [v for n in names for _, v in signal.indicator_values(SimpleNamespace(hashes=indicators[n]), settings)]
    index = VpdqIndex(pa.chunked_array([pa.array(values)]), np.arange(len(names)), settings)
    out = set()
    for q, hashes in queries.items():
        out |= {(q, names[h.row]) for h in index.query(signal.probe(hashes, settings) or [])}
    return out


def _family(name: str) -> str:
    return name.split("-")[0]


def _meta_hashes(name: str) -> hashing.VideoHashes:
    """Meta's published every-frame vPDQ of a test video (whole frames, made without bar removal)."""
    rows = [line.strip().split(",") for line in open(need_shared("vpdq", "expected") / f"{name}.txt") if line.strip()]
    return hashing.VideoHashes(digests={}, frames=tuple(
        VideoFrame(frame=int(a), quality=int(b), pdq=bytes.fromhex(c), timestamp=float(d)) for a, b, c, d in rows))


def test_meta_videos_match_across_their_bars_both_ways(meta_videos):
    """Uploads (``hash_video``: the decoder process, key frames) against indicators made from the
    files (``hash_video_file``, 1 s), with bars removed on both sides: the HD pattern clip without
    bars and its SD copies with bars find each other, each way; no video matches another family.
    Without bar removal (``match.video_bars: false``) the pattern clips do not (the issue)."""
    uploads = {n: hash_video(p.read_bytes(), seconds_per_hash=1.0) for n, p in meta_videos.items()}
    files = {n: hashing.VideoHashes(digests={}, frames=tuple(hash_video_file(str(p), 1.0))) for n, p in meta_videos.items()}
    assert {n for n, h in uploads.items() if any(f.cropped for f in h.frames)} == {
        "chair-19-sd-bar", "chair-20-sd-bar", "pattern-sd-grey-bar", "pattern-sd-with-small-logo-bar"}
    got = _decisions(uploads, files)
    pattern = ["pattern-hd-no-bar", "pattern-sd-grey-bar", "pattern-sd-with-small-logo-bar"]
    assert {(q, i) for q in pattern for i in pattern} <= got  # both directions, logo and greyscale too
    assert {(n, n) for n in meta_videos} <= got
    assert not {(q, i) for q, i in got if _family(q) != _family(i)}  # the unrelated videos stay apart
    # an upload with bars still matches an indicator hashed whole elsewhere (its whole-frame hashes)
    meta = {n: _meta_hashes(n) for n in meta_videos}
    with_meta = _decisions(uploads, meta)
    assert {(n, n) for n in meta_videos} <= with_meta
    assert not {(q, i) for q, i in with_meta if _family(q) != _family(i)}

    pair = ["pattern-hd-no-bar", "pattern-sd-grey-bar"]  # without bar removal: the miss
    whole = {n: hash_video(meta_videos[n].read_bytes(), seconds_per_hash=1.0, bars=False) for n in pair}
    assert _decisions(whole, {n: meta[n] for n in pair}) == {(n, n) for n in pair}  # each only itself


def test_both_decoder_modes_crop_alike(meta_videos):
    """``keyframes`` and ``all`` (every frame through the ffmpeg CLI when there are bars) hash the
    same frame to the same whole and cropped hashes; without bars ``all`` is vpdq as before."""
    path = meta_videos["pattern-sd-grey-bar"]
    fd = os.open(path, os.O_RDONLY)
    try:
        keyframes = vpdq_worker.hash_frames(fd, 1.0, "keyframes", bars=True)
        every = vpdq_worker.hash_frames(fd, 1.0, "all", bars=True)
        whole = vpdq_worker.hash_frames(fd, 1.0, "all", bars=False)
    finally:
        os.close(fd)
    by_frame = {(f[0], f[4]): f[2] for f in every}
    assert [f[4] for f in keyframes] == ["", "cropped"] * (len(keyframes) // 2)
    assert all(by_frame[(f[0], f[4])] == f[2] for f in keyframes)
    assert [f[:4] for f in every if not f[4]] == [f[:4] for f in whole]  # the whole frames are vpdq's


def test_the_setting_reaches_the_decoder_process(meta_videos):
    data = meta_videos["pattern-sd-grey-bar"].read_bytes()
    assert any(f.cropped for f in hash_video(data, seconds_per_hash=1.0).frames)  # on by default
    assert not any(f.cropped for f in hash_video(data, seconds_per_hash=1.0, bars=False).frames)
    assert MatchSettings().video_bars is True and load_settings().match.video_bars is True


# --- the match rule -------------------------------------------------------------------------------


def _hash(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes()


def _index(settings: MatchSettings, frames: list[bytes]) -> VpdqIndex:
    return VpdqIndex(pa.chunked_array([pa.array([" ".join(h.hex() for h in frames)])]), np.array([7]), settings)


def test_both_shares_must_be_met():
    """A 2-frame excerpt of a 10-frame indicator: every query frame found (query share 1.0), 20% of
    the indicator's frames found. It passes the query share and matches or not by the indicator share."""
    indicator = [_hash(i) for i in range(10)]
    excerpt = [(h,) for h in indicator[:2]]
    assert [h.row for h in _index(MatchSettings(video_indicator_share=0.2), indicator).query(excerpt)] == [7]
    assert _index(MatchSettings(video_indicator_share=0.5), indicator).query(excerpt) == []
    # the other way round: all of a 2-frame indicator found by a query whose other 8 frames are not
    query = [(h,) for h in indicator[:2]] + [(_hash(100 + i),) for i in range(8)]
    short = _index(MatchSettings(video_frame_share=0.8, video_indicator_share=1.0), indicator[:2])
    assert short.query(query) == []
    hits = _index(MatchSettings(video_frame_share=0.2, video_indicator_share=1.0), indicator[:2]).query(query)
    assert [(h.row, h.distance) for h in hits] == [(7, 0.8)]  # distance: 1 - the query share, as before


def test_a_frame_whose_picture_is_flat_is_left_out_whole():
    """A dark fade between bars: the whole frame's PDQ quality is lent by the bars (78-100 on
    Meta's doorknob clip padded 4:3), its picture's is 0-23. The frame says nothing, as it says
    nothing without bars, so the query share counts the other frames."""
    whole, cropped = [_hash(i) for i in range(4)], [_hash(50 + i) for i in range(4)]
    quality = [100, 68, 0, 23]  # the picture's; the whole frames' are all >= 78
    frames = [VideoFrame(frame=i, quality=90, pdq=h, timestamp=float(i)) for i, h in enumerate(whole)]
    frames += [VideoFrame(frame=i, quality=q, pdq=h, timestamp=float(i), cropped=True)
               for i, (h, q) in enumerate(zip(cropped, quality))]
    assert frame_groups(frames, 50) == [(whole[0], cropped[0]), (whole[1], cropped[1])]
    hits = _index(MatchSettings(), cropped[:2]).query(frame_groups(frames, 50))
    assert [(h.row, h.distance) for h in hits] == [(7, 0.0)]  # 2 of 2 informative frames, not 2 of 4
    explained = VpdqSignal().explain(SimpleNamespace(content="video", frames=frames), " ".join(h.hex() for h in cropped[:2]),
                                     MatchSettings())
    assert explained["frames_matched"] == explained["frames_queried"] == 2
    # without bars a frame below the gate was, and is, left out alone
    plain = [VideoFrame(frame=i, quality=q, pdq=h, timestamp=float(i)) for i, (h, q) in enumerate(zip(whole, quality))]
    assert frame_groups(plain, 50) == [(whole[0],), (whole[1],)]


def test_a_frame_counts_once_when_its_whole_or_cropped_hash_matches():
    whole, cropped = [_hash(i) for i in range(5)], [_hash(50 + i) for i in range(5)]
    frames = [VideoFrame(frame=i, quality=90, pdq=h, timestamp=float(i)) for i, h in enumerate(whole)]
    frames += [VideoFrame(frame=i, quality=90, pdq=h, timestamp=float(i), cropped=True) for i, h in enumerate(cropped)]
    groups = frame_groups(frames, 50)
    assert groups == [(w, c) for w, c in zip(whole, cropped)]
    settings = MatchSettings()
    for indicator in (cropped, whole):  # made from media with bar removal / hashed whole elsewhere
        hits = _index(settings, indicator).query(groups)
        assert [(h.row, h.distance) for h in hits] == [(7, 0.0)]
    # an indicator made from media keeps the cropped hashes only
    value = VpdqSignal().indicator_values(SimpleNamespace(hashes=SimpleNamespace(frames=frames)), settings)
    assert value == [("", " ".join(h.hex() for h in cropped))]
    explained = VpdqSignal().explain(SimpleNamespace(content="video", frames=frames), value[0][1], settings)
    assert explained["frames_matched"] == explained["frames_queried"] == 5
    assert explained["indicator_frames_matched"] == explained["indicator_frames"] == 5


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_the_shares_are_validated_in_one_line(share, tmp_path):
    for key in ("video_frame_share", "video_indicator_share"):
        config = tmp_path / "c.yaml"
        config.write_text(f"match:\n  {key}: {share}\n")
        with pytest.raises(ConfigError) as err:
            load_settings(str(config))
        assert f"match.{key}" in str(err.value) and "\n" not in str(err.value)
    assert load_settings().match.video_indicator_share == MatchSettings().video_indicator_share


def test_the_pipeline_stage_passes_the_switch_to_the_decoder(meta_videos):
    """``HashMedia`` (the pipeline's stage) hashes a barred upload whole and cropped with
    ``match.video_bars`` on, and whole only with it off."""
    data = meta_videos["pattern-sd-grey-bar"].read_bytes()
    cropped = {bars: [f.cropped for f in video_through_hash_stage(data, MatchSettings(video_bars=bars))]
               for bars in (True, False)}
    assert any(cropped[True]) and not all(cropped[True])  # whole and cropped frames
    assert cropped[False] and not any(cropped[False])
