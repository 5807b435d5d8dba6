"""The video decoder process's frame choice (issue 15, item 5): key frames only when they are dense
enough (``auto``), the same hashes as vpdq for those frames, the fall back to vpdq's every-frame
decode when they are not, and the match decisions on Meta's vPDQ test videos unchanged.
Speeds are in benchmarks/video.md (``python -m benchmarks.bench_video``), never timed here."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from csadetect.config.settings import MatchSettings
from csadetect.media import hashing, synth, vpdq_worker
from csadetect.media.hashing import VideoFrame, hamming, hash_video, hash_video_file
from csadetect.signals.vpdq import VpdqIndex, VpdqSignal
from tests.conftest import need_shared

REPO = Path(__file__).resolve().parents[1]


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Benign test-pattern clips, 6 s at 30 fps: a key frame every 1 s, and one key frame only."""
    if not (synth.ffmpeg_available() and hashing.shutil.which("ffprobe")):
        pytest.skip("ffmpeg/ffprobe CLI not installed (make sysdeps installs them)")
    d = tmp_path_factory.mktemp("clips")
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p"]
    _ffmpeg(*src, "-g", 30, "-keyint_min", 30, "-sc_threshold", 0, d / "gop1s.mp4")
    _ffmpeg(*src, "-g", 1000, "-sc_threshold", 0, d / "onekey.mp4")
    _ffmpeg(*src, "-g", 30, "-sc_threshold", 0, "-output_ts_offset", 10, d / "offset.ts")  # starts at 11.4 s
    return {p.stem: p for p in d.iterdir()}


def _run(path: Path, seconds_per_hash: float, mode: str | None) -> list[tuple]:
    fd = os.open(path, os.O_RDONLY)
    try:
        if mode is None:
            return vpdq_worker.hash_frames(fd, seconds_per_hash)
        return vpdq_worker.hash_frames(fd, seconds_per_hash, mode)
    finally:
        os.close(fd)


def test_dense_key_frames_are_hashed_alone_as_vpdq_hashes_them(clips):
    auto = _run(clips["gop1s"], 1.0, None)
    keyframes = _run(clips["gop1s"], 1.0, "keyframes")
    every = _run(clips["gop1s"], 1.0, "all")
    assert auto == keyframes  # the default took the key-frame path
    # the key frames are frames 0, 30, ... 150: exactly those vpdq samples once a second
    assert [f[0] for f in keyframes] == [f[0] for f in every] == [0, 30, 60, 90, 120, 150]
    for (num, quality, hexhash, ts, _), (num2, quality2, hexhash2, ts2, _) in zip(keyframes, every):
        assert ts == pytest.approx(ts2) and abs(quality - quality2) <= 1
        assert hamming(bytes.fromhex(hexhash), bytes.fromhex(hexhash2)) <= 2  # compiled PDQ: rounding only


def test_sparse_key_frames_fall_back_to_every_frame_decoding(clips):
    fd = os.open(clips["onekey"], os.O_RDONLY)
    try:
        with pytest.raises(vpdq_worker.Unusable, match="sparse"):
            vpdq_worker.keyframe_hashes(fd, 1.0, check_gaps=True)
        assert len(vpdq_worker.keyframe_hashes(fd, 1.0, check_gaps=False)) == 1  # what it would have hashed
    finally:
        os.close(fd)
    auto = _run(clips["onekey"], 1.0, None)
    assert auto == _run(clips["onekey"], 1.0, "all") and len(auto) == 6  # vpdq's 6 samples, not 1 key frame
    assert [f[0] for f in auto] == [0, 30, 60, 90, 120, 150]


def test_a_stream_that_does_not_start_at_zero_is_numbered_from_its_start(clips):
    auto = _run(clips["offset"], 1.0, None)
    assert auto == _run(clips["offset"], 1.0, "keyframes")
    assert [(f[0], f[3]) for f in auto] == [(n, n / 30) for n in (0, 30, 60, 90, 120, 150)]
    assert [f[2] for f in auto] == [f[2] for f in _run(clips["gop1s"], 1.0, None)]  # the same pictures


def test_every_frame_sampling_is_never_key_frames_only(clips):
    frames = _run(clips["gop1s"], 0.0, None)
    assert len(frames) == 180 and [f[0] for f in frames] == list(range(180))


def test_the_gap_limit_is_twice_the_sampling_interval(clips):
    # key frames 1 s apart: 0.5 s sampling still takes them (1 s = 2 x 0.5 s, the limit is inclusive) ...
    assert _run(clips["gop1s"], 0.5, None) == _run(clips["gop1s"], 0.5, "keyframes")
    assert [f[0] for f in _run(clips["gop1s"], 0.5, None)] == [0, 30, 60, 90, 120, 150]
    # ... 0.4 s sampling does not: every frame is decoded and one each 12 frames hashed, as vpdq does
    finer = _run(clips["gop1s"], 0.4, None)
    assert finer == _run(clips["gop1s"], 0.4, "all") and [f[0] for f in finer] == list(range(0, 180, 12))


def test_pipeline_path_uses_the_key_frames(clips):
    data = clips["gop1s"].read_bytes()
    got = hash_video(data, seconds_per_hash=1.0)
    want = [VideoFrame(frame=n, quality=q, pdq=bytes.fromhex(h), timestamp=t) for n, q, h, t, _ in _run(clips["gop1s"], 1.0, "keyframes")]
    assert [f for f in got.frames if not f.cleaned] == want  # plus any hashes with static overlays painted out
    sparse = hash_video(clips["onekey"].read_bytes(), seconds_per_hash=1.0)
    assert list(sparse.frames) == hash_video_file(str(clips["onekey"]), seconds_per_hash=1.0)


def test_the_decode_setting_reaches_the_worker(clips, tmp_path):
    """``match.video_decode``: ``all`` decodes every frame even where the key frames would do; a
    mode the worker does not know is refused before any process starts, and by the settings."""
    clip = tmp_path / "gop1.5s.mp4"  # key frames every 45 frames: auto hashes those, all every 30th
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-g", 45, "-keyint_min", 45, "-sc_threshold", 0, clip)
    data = clip.read_bytes()
    every = hash_video(data, seconds_per_hash=1.0, decode="all")
    assert list(every.frames) == hash_video_file(str(clip), seconds_per_hash=1.0)
    assert [f.frame for f in every.frames] == [0, 30, 60, 90, 120, 150]
    assert [f.frame for f in hash_video(data, seconds_per_hash=1.0, decode="auto").frames if not f.cleaned] == [0, 45, 90, 135]
    with pytest.raises(ValueError, match="decode mode"):
        hash_video(data, seconds_per_hash=1.0, decode="fast")
    assert MatchSettings().video_decode == "auto" and MatchSettings(video_decode="all").video_decode == "all"
    with pytest.raises(ValueError):
        MatchSettings(video_decode="keyframes-only")


@pytest.mark.parametrize("argv", [["3", "1.0", "0", "1", "fast"], ["3", "-1", "0", "1"], ["3", "1.0", "0", "1", "auto", "x"]])
def test_bad_arguments_exit_2(argv):
    assert vpdq_worker.main(argv) == vpdq_worker.EXIT_USAGE


def test_worker_process_modes_from_the_command_line(clips):
    fd = os.open(clips["gop1s"], os.O_RDONLY)
    try:
        out = {}
        for mode in ("keyframes", "all"):
            done = subprocess.run([sys.executable, "-m", "csadetect.media.vpdq_worker", str(fd), "1.0", str(1 << 30),
                                   str(os.getpid()), mode], pass_fds=(fd,), capture_output=True, cwd=REPO, check=True)
            out[mode] = [line.split() for line in done.stdout.decode().splitlines()]
    finally:
        os.close(fd)
    assert [f[0] for f in out["keyframes"]] == [f[0] for f in out["all"]] == ["0", "30", "60", "90", "120", "150"]
    assert all(len(f) == 4 and len(f[2]) == 64 for f in out["keyframes"])


def _children(pid: int) -> list[tuple[int, bytes]]:
    out = []
    for child in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append((int(child), Path(f"/proc/{child}/cmdline").read_bytes()))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _gone(pid: int) -> bool:
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    except OSError:
        return True


def test_killed_decoder_takes_its_ffmpeg_with_it(tmp_path):
    """The decoder process SIGKILLed (the budget ran out) while FFmpeg decodes key frames for it:
    FFmpeg dies too (PR_SET_PDEATHSIG), so nothing keeps the upload's descriptor open."""
    if not (synth.ffmpeg_available() and hashing.shutil.which("ffprobe")):
        pytest.skip("ffmpeg/ffprobe CLI not installed (make sysdeps installs them)")
    video = tmp_path / "intra.mp4"  # every frame a key frame: seconds of key frames to decode
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=60", "-c:v", "libx264", "-preset",
            "ultrafast", "-g", 1, "-pix_fmt", "yuv420p", video)
    fd = os.open(video, os.O_RDONLY)
    try:
        worker = subprocess.Popen([sys.executable, "-m", "csadetect.media.vpdq_worker", str(fd), "1.0", "0",
                                   str(os.getpid()), "keyframes"], pass_fds=(fd,), cwd=REPO, stdout=subprocess.DEVNULL)
    finally:
        os.close(fd)
    ffmpeg = None
    for _ in range(600):
        ffmpeg = next((pid for pid, cmd in _children(worker.pid) if cmd.startswith(b"ffmpeg") or b"/ffmpeg\0" in cmd), None)
        if ffmpeg is not None or worker.poll() is not None:
            break
        time.sleep(0.02)
    assert ffmpeg is not None, "ffmpeg did not start under the decoder process"
    os.kill(ffmpeg, signal.SIGSTOP)  # stopped, it cannot see its output pipe close: only a signal ends it
    worker.kill()
    worker.wait()
    try:
        for _ in range(100):
            if _gone(ffmpeg):
                break
            time.sleep(0.05)
        else:
            pytest.fail("ffmpeg outlived the decoder process")
    finally:
        if not _gone(ffmpeg):
            os.kill(ffmpeg, signal.SIGKILL)


# --- the key-frame choice, as a pure function ---------------------------------------------------------


gaps = st.lists(st.floats(min_value=0.01, max_value=2.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(gaps=gaps, tail=st.floats(min_value=0.0, max_value=2.0), seconds_per_hash=st.sampled_from([0.5, 1.0, 2.0]))
def test_thinning_keeps_gaps_within_the_limit(gaps, tail, seconds_per_hash):
    scale = seconds_per_hash  # key frames at most MAX_GAP_FACTOR x seconds_per_hash apart
    times = list(np.cumsum([0.0] + [g * scale for g in gaps]))
    end = times[-1] + tail * scale
    kept = [t for t, _ in vpdq_worker._thin(((t, b"") for t in times), seconds_per_hash, end)]
    assert kept[0] == times[0] and set(kept) <= set(times)
    limit = vpdq_worker.MAX_GAP_FACTOR * seconds_per_hash + 1e-6
    edges = kept + [end]
    assert max(b - a for a, b in zip(edges, edges[1:])) <= limit
    # two steps always advance by at least the interval: at most 2 hashes per interval
    assert all(c - a >= seconds_per_hash - 1e-3 for a, c in zip(kept, kept[2:]))


def test_thinning_keeps_one_per_interval_from_dense_key_frames():
    times = [i * 0.25 for i in range(20)]  # every 0.25 s, 5 s of video
    kept = [t for t, _ in vpdq_worker._thin(((t, b"") for t in times), 1.0, 5.0)]
    assert kept == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_frame_times_are_read_across_partial_lines():
    fd = os.memfd_create("log")
    try:
        reader = vpdq_worker._FrameTimes(fd)
        os.write(fd, b"[Parsed_showinfo_0 @ 0x1] config in time_base: 1/15360\n[Parsed_showinfo_0 @ 0x1] n:   0 pts:")
        assert reader.poll() == []
        os.write(fd, b"      0 pts_time:0       pos: 48\nframe=  3 fps=0.0\r[Parsed_showinfo_0 @ 0x1] n:   1 pts: 15360 pts_time:1.5 pos:9\n")
        assert reader.poll() == [0.0, 1.5]
    finally:
        os.close(fd)


# --- Meta's vPDQ test videos: same hashes, same match decisions ------------------------------------------------


def _decisions(query_frames: dict[str, list[VideoFrame]], indicators: dict[str, list[VideoFrame]]) -> set[tuple[str, str]]:
    settings_, signal = MatchSettings(), VpdqSignal()
    names = sorted(indicators)
    values = [" ".join(dict.fromkeys(f.pdq.hex() for f in indicators[n] if f.quality >= settings_.quality_gate)) for n in names]
    index = VpdqIndex(pa.chunked_array([pa.array(values)]), np.arange(len(names)), settings_)
    out = set()
    for q, frames in query_frames.items():
        good = signal.probe(SimpleNamespace(content="video", frames=frames), settings_)
        out |= {(q, names[h.row]) for h in index.query(good or [])}
    return out


def test_meta_videos_hash_and_match_as_before():
    videos = need_shared("vpdq", "videos")
    expected = need_shared("vpdq", "expected")
    if not hashing.shutil.which("ffmpeg"):
        pytest.skip("ffmpeg CLI not installed (make sysdeps installs it)")
    names = sorted(p.stem for p in videos.glob("*.mp4"))
    meta = {}
    for n in names:
        rows = [line.strip().split(",") for line in open(expected / f"{n}.txt") if line.strip()]
        meta[n] = [VideoFrame(frame=int(a), quality=int(b), pdq=bytes.fromhex(c), timestamp=float(d)) for a, b, c, d in rows]

    def frames(path: Path, mode: str) -> list[VideoFrame]:
        return [VideoFrame(frame=a, quality=b, pdq=bytes.fromhex(c), timestamp=d) for a, b, c, d, _ in _run(path, 1.0, mode)]

    auto = {n: frames(videos / f"{n}.mp4", "auto") for n in names}
    before = {n: frames(videos / f"{n}.mp4", "all") for n in names}
    for n in names:  # every video here has a key frame each 2 s: the default hashes those
        assert [f.frame for f in auto[n]] == [f.frame for f in before[n]][::2]
        by_frame = {f.frame: f for f in meta[n]}
        for f in auto[n]:
            if by_frame[f.frame].quality >= 80:  # conformance level, as test_hashing holds vpdq to it
                assert hamming(f.pdq, by_frame[f.frame].pdq) <= 6
    from_media = {n: hash_video_file(str(videos / f"{n}.mp4"), seconds_per_hash=1.0, bars=False) for n in names}
    for indicators in (meta, from_media):
        got = _decisions(auto, indicators)
        assert got == _decisions(before, indicators)
        assert {(n, n) for n in names} <= got  # each video matches itself
        assert ("pattern-sd-grey-bar", "pattern-sd-with-small-logo-bar") in got  # two edits of one video
        assert not {(q, i) for q, i in got if q.split("-")[0] != i.split("-")[0]}  # no false match
    assert ("chair-20-sd-bar", "chair-19-sd-bar") in _decisions(auto, meta)  # against Meta's every-frame hashes
