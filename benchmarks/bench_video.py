"""vPDQ speed per core and vPDQ recall by frame sampling (issue 15, item 5) and across letterbox bars (issue 17).

Targets: vPDQ of an uploaded video at >= 50x real time for 360p and >= 15x for 720p per core,
with the frame sampling rate stated and its effect on recall measured on Meta's vPDQ test videos.

Speed: each configuration hashes each clip in this process pinned to one core
(``os.sched_setaffinity``; the processes it starts inherit the pin), and its cost is the CPU time
of this process *and* of its children (``RUSAGE_CHILDREN``: the decoder process, ffprobe, ffmpeg),
so other load on the machine does not count. Real-time factor = clip duration / CPU seconds.
Configurations:

* ``pipeline``: :func:`csadetect.media.hashing.hash_video` on the bytes, as ``HashMedia`` calls it
  (digests, anonymous file, ffprobe, the decoder process ``vpdq_worker`` in its default mode);
* ``worker MODE``: the same path with the decoder process in another mode
  (:mod:`csadetect.media.vpdq_worker`): ``all`` (Meta's ``vpdq.computeHash``, every frame
  decoded: the pipeline before this benchmark), ``keyframes`` (only key frames decoded, no
  fallback), ``auto`` (key frames when dense enough, else ``all``);
* ``vpdq in-process``: ``vpdq.computeHash`` in this process, at full size and with its
  ``downsample_width/height`` (FFmpeg's swscale shrinks each sampled frame, long side 512, before PDQ);
* ``ffmpeg decode only``: ``ffmpeg -f null`` of every frame, and of key frames only: the floor
  each way of decoding sets.

Clips (generated into ``benchmarks/.data/video/``, git-ignored): H.264 at 30 fps,
x264 ``veryfast``, CRF 23 capped at 1.5 Mbit/s (360p) and 4 Mbit/s (720p), a key frame at least
every 2 s (``-g 60``, as phones and video sites encode; x264 adds more at scene cuts), and the same
with x264's default key frame interval (250 frames): ``synth`` is ``testsrc2`` with temporal
noise (30 s), ``real`` is Meta's two ``chair`` test videos back to back, cropped to 16:9 (39 s).

Recall: the six videos of Meta's vPDQ test set (``../shared/testdata/threatexchange/vpdq``:
``videos/*.mp4``, ``expected/*.txt`` = Meta's hash of every frame) fall in three families
(``chair-*``, ``doorknob-*``, ``pattern-*``: the same footage with bars, logos, re-scaling). Each
video is hashed by each configuration as the query and matched with the pipeline's rule
(:class:`csadetect.signals.vpdq.VpdqIndex`: share of the query's frames with quality >= 50 within
31 bits of a frame of the indicator >= 0.8) against indicators made from the six originals, (a)
from Meta's every-frame hashes, (b) as ``indicators from-media`` made them before
``match.video_indicator_seconds_per_hash`` (vpdq every 1 s) and (c) as it makes them now (every frame).
A pair of the same family is a positive, of different families a negative. The same again with
each test video re-encoded with its time shifted (first 0.5 s cut, a key frame every 1.5 s), so
that no key frame falls on a frame the 1 s sampling of the original hashed.

Letterboxed video (issue 17, item 2): ``bars`` re-encodes sources at run time with ffmpeg (Meta's
two HD videos without bars, and four generated pans over benign synthetic pictures, 8 s at 30 fps)
with each edit of :data:`EDITS` (padded to 4:3, 9:16 or 1:1 with black or grey bars, greyscale, a
small logo over the picture or in a bar, and a plain SD re-encode as the control), a key frame each
second. Every edited clip is hashed as an upload (``hash_video``) and matched against indicators made
from the six unedited sources plus Meta's two chair videos (``hash_video_file``, at 1 s and at every
frame), side by side: the previous release (``match.video_bars: false``, the query share alone) and
now (bars removed on both sides, both shares at their defaults). Recall counts an edit matching its
own source, false matches any other indicator. Nothing was tuned on these clips (the bar finder
reuses the still-image peeler's thresholds; the shares' defaults are explained in the notes). The
cost of bar removal: the pipeline with ``bars`` on and off on every speed clip, including two
pillarboxed ones (``-bars``: 4:3 content padded to 16:9).

    python -m benchmarks.bench_video              # ~8 min; writes benchmarks/video.md
    python -m benchmarks.bench_video --quick      # 360p and 720p synth only, no recall; prints
    python -m benchmarks.bench_video --only recall   # one part again (the others are kept from result.json)
    python -m benchmarks.bench_video --only bars     # the letterbox recall only
    python -m benchmarks.bench_video --render     # format the saved measurement again (notes kept)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from benchmarks.machine import cpu_model
from benchmarks.video_report import render
from csadetect.config.settings import MatchSettings
from csadetect.media import hashing
from csadetect.media.hashing import VideoFrame, VideoLimits, hash_video, hash_video_file
from csadetect.signals.vpdq import VpdqIndex, VpdqSignal

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / ".data" / "video"
OUT = REPO / "benchmarks" / "video.md"
RESULT = DATA / "result.json"
SHARED = REPO.parent / "shared" / "testdata" / "threatexchange" / "vpdq"
FAMILIES = {"chair-19-sd-bar": "chair", "chair-20-sd-bar": "chair", "doorknob-hd-no-bar": "doorknob",
            "pattern-hd-no-bar": "pattern", "pattern-sd-grey-bar": "pattern", "pattern-sd-with-small-logo-bar": "pattern"}
SIZES = {"360p": (640, 360, "1500k"), "720p": (1280, 720, "4M")}


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *map(str, args)], check=True)


def _encode(size: str, gop: int | None) -> list[str]:
    width, height, rate = SIZES[size]
    keyint = ["-g", gop] if gop else []
    return ["-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", 23, "-maxrate", rate, "-bufsize", rate,
            *keyint, "-pix_fmt", "yuv420p", "-threads", 2]


def make_clips(quick: bool) -> dict[str, Path]:
    """The speed clips, generated once (benign: a test pattern, Meta's chair footage)."""
    DATA.mkdir(parents=True, exist_ok=True)
    clips = {}
    sources = ["synth"] + ([] if quick or not SHARED.is_dir() else ["real", "synth-bars"])
    for source in sources:
        for size, (width, height, _) in SIZES.items():
            for gop, tag in ((60, ""), (None, "-k250")):
                if (quick or source == "synth-bars") and gop is None:
                    continue
                path = DATA / f"{source}-{size}{tag}.mp4"
                if not path.exists():
                    print(f"making {path.name}", file=sys.stderr)
                    if source == "synth":
                        src = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration=30",
                               "-vf", "noise=alls=10:allf=t"]
                    elif source == "synth-bars":  # 4:3 content pillarboxed to 16:9
                        inner = height * 4 // 3
                        src = ["-f", "lavfi", "-i", f"testsrc2=size={inner}x{height}:rate=30:duration=30",
                               "-vf", f"noise=alls=10:allf=t,pad={width}:{height}:{(width - inner) // 2}:0:black"]
                    else:
                        src = ["-i", SHARED / "videos" / "chair-19-sd-bar.mp4", "-i", SHARED / "videos" / "chair-20-sd-bar.mp4",
                               "-filter_complex", f"[0:v][1:v]concat=n=2:v=1:a=0,fps=30,scale={width}:-2,crop={width}:{height}"]
                    _ffmpeg(*src, *_encode(size, gop), path)
                clips[path.stem] = path
    return clips


def shifted_videos() -> dict[str, Path]:
    """Meta's test videos with the first 0.5 s cut and a key frame every 1.5 s (re-encoded)."""
    out = {}
    for name in FAMILIES:
        path = DATA / "shifted" / f"{name}.mp4"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _ffmpeg("-ss", 0.5, "-i", SHARED / "videos" / f"{name}.mp4", "-an", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", 23, "-g", 45, "-keyint_min", 45, "-sc_threshold", 0, "-pix_fmt", "yuv420p", "-threads", 2, path)
        out[name] = path
    return out


# --- cost -----------------------------------------------------------------------------------------


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _duration(path: Path) -> float:
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout)


def worker_frames(fd: int, seconds_per_hash: float, mode: str, limits: VideoLimits = VideoLimits()) -> list[VideoFrame]:
    """The decoder process in ``mode``, started as ``csadetect.media.video._decode`` starts it (plus the mode)."""
    cmd = [sys.executable, "-m", "csadetect.media.vpdq_worker", str(fd), repr(float(seconds_per_hash)),
           str(limits.max_memory_bytes), str(os.getpid()), mode]
    done = subprocess.run(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, capture_output=True, check=True)
    frames = []
    for line in done.stdout.decode().splitlines():
        num, quality, hexhash, ts = line.split()
        frames.append(VideoFrame(frame=int(num), quality=int(quality), pdq=bytes.fromhex(hexhash), timestamp=float(ts)))
    return frames


def pipeline_with_mode(data: bytes, seconds_per_hash: float, mode: str) -> list[VideoFrame]:
    """``hash_video``'s steps (digests, anonymous file, probe, limits, decoder) with the decoder in ``mode``."""
    limits = VideoLimits()
    hashing.crypto_hashes(data, hashing.DIGESTS)
    fd = hashing._anonymous_file(data)
    try:
        hashing.check_video(hashing.probe_video(fd, limits), limits, seconds_per_hash)
        return worker_frames(fd, seconds_per_hash, mode, limits)
    finally:
        os.close(fd)


def _long_side(path: Path, side: int) -> tuple[int, int]:
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    width, height = map(int, done.stdout.strip().split(","))
    scale = side / max(width, height)
    return (width, height) if scale >= 1 else (max(2, round(width * scale)), max(2, round(height * scale)))


def vpdq_inprocess(path: Path, seconds_per_hash: float, long_side: int = 0) -> list:
    import vpdq  # lazy: it links FFmpeg

    width, height = _long_side(path, long_side) if long_side else (0, 0)
    return vpdq.computeHash(str(path), seconds_per_hash=seconds_per_hash, downsample_width=width,
                            downsample_height=height, thread_count=1)


def decode_only(path: Path, keyframes: bool) -> None:
    skip = ["-skip_frame", "nokey"] if keyframes else []
    _ffmpeg("-threads", 1, *skip, "-i", path, "-map", "0:v:0", "-f", "null", "-")


SPEED_CONFIGS = [  # (label, seconds_per_hash, fn(path, data) -> frames or None)
    *[(f"pipeline (hash_video) {s:g} s", s, lambda p, d, s=s: hash_video(d, seconds_per_hash=s).frames) for s in (1.0, 0.5, 2.0)],
    ("pipeline (hash_video) 1 s, bars off", 1.0, lambda p, d: hash_video(d, seconds_per_hash=1.0, bars=False).frames),
    ("pipeline (hash_video) 1 s, overlays off", 1.0,
     lambda p, d: hash_video(d, seconds_per_hash=1.0, overlays=False).frames),
    *[(f"worker all {s:g} s", s, lambda p, d, s=s: pipeline_with_mode(d, s, "all")) for s in (1.0, 0.5, 2.0)],
    ("worker keyframes 1 s", 1.0, lambda p, d: pipeline_with_mode(d, 1.0, "keyframes")),
    ("vpdq in-process 1 s", 1.0, lambda p, d: vpdq_inprocess(p, 1.0)),
    ("vpdq in-process 1 s, downsample 512", 1.0, lambda p, d: vpdq_inprocess(p, 1.0, 512)),
    ("ffmpeg decode only, every frame", 0.0, lambda p, d: decode_only(p, False)),
    ("ffmpeg decode only, key frames", 0.0, lambda p, d: decode_only(p, True)),
]


def measure_speed(clips: dict[str, Path], repeat: int) -> list[dict]:
    rows = []
    for name, path in clips.items():
        data, seconds = path.read_bytes(), _duration(path)
        pipeline_with_mode(data, 1.0, "keyframes")  # warm the page cache and the imports
        for label, sph, fn in SPEED_CONFIGS:
            costs, frames = [], None
            for _ in range(repeat):
                start = _cpu()
                frames = fn(path, data)
                costs.append(_cpu() - start)
            cpu = min(costs)
            rows.append({"clip": name, "config": label, "seconds": seconds, "cpu": cpu, "x": seconds / cpu,
                         "frames": None if frames is None else len(frames)})
            print(f"{name:16} {label:38} {cpu:7.3f} s CPU  {seconds / cpu:6.1f}x  {rows[-1]['frames']}", file=sys.stderr)
    return rows


# --- recall ---------------------------------------------------------------------------------------


def _expected(name: str) -> list[VideoFrame]:
    frames = []
    for line in (SHARED / "expected" / f"{name}.txt").read_text().splitlines():
        if line.strip():
            num, quality, hexhash, ts = line.strip().split(",")
            frames.append(VideoFrame(frame=int(num), quality=int(quality), pdq=bytes.fromhex(hexhash), timestamp=float(ts)))
    return frames


def _as_frames(features) -> list[VideoFrame]:
    return [VideoFrame(frame=int(f.frame_number), quality=int(f.quality), pdq=bytes.fromhex(f.hex),
                       timestamp=float(f.timestamp)) for f in features]


RECALL_CONFIGS = [  # (label, fn(path) -> frames)
    *[(f"all {s:g} s (vpdq; before)", lambda p, s=s: _file_worker(p, s, "all")) for s in (1.0, 0.5, 2.0)],
    *[(f"auto {s:g} s (default)" if s == 1.0 else f"auto {s:g} s", lambda p, s=s: _file_worker(p, s, "auto"))
      for s in (1.0, 0.5, 2.0)],
    ("keyframes 1 s (no fallback)", lambda p: _file_worker(p, 1.0, "keyframes")),
    ("all 1 s, downsample 512", lambda p: _as_frames(vpdq_inprocess(p, 1.0, 512))),
    ("all 1 s, downsample 128", lambda p: _as_frames(vpdq_inprocess(p, 1.0, 128))),
]


def _file_worker(path: Path, seconds_per_hash: float, mode: str) -> list[VideoFrame]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return worker_frames(fd, seconds_per_hash, mode)
    finally:
        os.close(fd)


def _decisions(indicators: dict[str, list[VideoFrame]], queries: dict[str, list[VideoFrame]]) -> dict:
    """Which query matches which indicator under the pipeline's vPDQ rule (default settings)."""
    settings, signal = MatchSettings(), VpdqSignal()
    names = list(indicators)
    values = [" ".join(dict.fromkeys(f.pdq.hex() for f in indicators[n] if f.quality >= settings.quality_gate))
              for n in names]
    index = VpdqIndex(pa.chunked_array([pa.array(values)]), np.arange(len(names)), settings)
    tally = {"self": [0, 0], "family": [0, 0], "false": [0, 0], "frames": 0, "min_share_self": 1.0, "max_share_neg": 0.0}
    for q, frames in queries.items():
        good = signal.probe(SimpleNamespace(frames=frames), settings) or []
        tally["frames"] += len(good)
        hits = {names[h.row]: 1 - h.distance for h in index.query(good)} if good else {}
        # the share of every indicator, for the margins (a match needs >= video_frame_share)
        for i, ind in enumerate(names):
            share, ind_share = _shares(good, indicators[ind], settings)
            same = FAMILIES[q] == FAMILIES[ind]
            kind = "self" if q == ind else "family" if same else "false"
            tally[kind][0] += ind in hits
            tally[kind][1] += 1
            if q == ind:
                tally["min_share_self"] = min(tally["min_share_self"], share)
            elif not same:
                tally["max_share_neg"] = max(tally["max_share_neg"], share)
            assert (ind in hits) == (share >= settings.video_frame_share - 1e-9
                                     and ind_share >= settings.video_indicator_share - 1e-9), (q, ind, share)
    return tally


def _shares(groups: list[tuple[bytes, ...]], indicator: list[VideoFrame], settings: MatchSettings) -> tuple[float, float]:
    """The query share and the indicator share (:mod:`csadetect.signals.vpdq`) of query frames
    ``groups`` (:func:`csadetect.signals.vpdq.frame_groups`) against an indicator's frames, by brute
    force (the indicator as its value keeps it: unique hashes with quality >= the gate, the cropped
    ones when there are)."""
    value = VpdqSignal().indicator_values(SimpleNamespace(hashes=SimpleNamespace(frames=indicator)), settings)
    if not groups or not value:
        return 0.0, 0.0
    ref = np.frombuffer(bytes.fromhex(value[0][1].replace(" ", "")), dtype=np.uint8).reshape(-1, 32)
    flat = [h for g in groups for h in g]
    qry = np.frombuffer(b"".join(flat), dtype=np.uint8).reshape(-1, 32)
    near = np.bitwise_count(qry[:, None, :] ^ ref[None, :, :]).sum(axis=2) <= settings.pdq_threshold
    found = dict(zip(flat, near.any(axis=1)))
    return float(np.mean([any(found[h] for h in g) for g in groups])), float(near.any(axis=0).mean())


def measure_recall() -> list[dict]:
    originals = {n: SHARED / "videos" / f"{n}.mp4" for n in FAMILIES}
    shifted = shifted_videos()
    indicator_sets = {
        "Meta's every-frame hashes": {n: _expected(n) for n in FAMILIES},
        "from-media at 1 s (before)": {n: hash_video_file(str(p), seconds_per_hash=1.0, bars=False)
                                       for n, p in originals.items()},
        "from-media at every frame (default)": {n: hash_video_file(str(p), seconds_per_hash=0, bars=False)
                                                for n, p in originals.items()},
    }
    conformance = {"vpdq": [], "meta": []}  # key-frame hashes against vpdq's and Meta's hash of the same frame
    for name, path in originals.items():
        meta = {f.frame: f for f in indicator_sets["Meta's every-frame hashes"][name]}
        ours = {f.frame: f for f in _file_worker(path, 1.0, "all")}
        for f in _file_worker(path, 1.0, "keyframes"):
            if f.frame in ours:
                conformance["vpdq"].append(hashing.hamming(f.pdq, ours[f.frame].pdq))
            if meta[f.frame].quality >= 80:  # PDQ's conformance level (tests/test_hashing.py)
                conformance["meta"].append(hashing.hamming(f.pdq, meta[f.frame].pdq))
    rows = [{"conformance": conformance}]
    for label, fn in RECALL_CONFIGS:
        for qlabel, videos in (("as published", originals), ("time-shifted re-encode", shifted)):
            queries = {n: fn(p) for n, p in videos.items()}
            for ilabel, indicators in indicator_sets.items():
                rows.append({"config": label, "queries": qlabel, "indicators": ilabel, **_decisions(indicators, queries)})
                print(f"{label:30} {qlabel:24} {ilabel:28} {rows[-1]}", file=sys.stderr)
    return rows


# --- letterboxed video (issue 17, item 2) ---------------------------------------------------------

BAR_SOURCES = ("pattern-hd-no-bar", "doorknob-hd-no-bar")  # Meta's videos without bars
SYNTH_SEEDS = (11, 12, 13, 14)  # generated pans (csadetect.media.synth)
EXTRA_INDICATORS = ("chair-19-sd-bar", "chair-20-sd-bar")  # more negatives, with bars of their own


def _fit(width: int, height: int, colour: str) -> str:
    return (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color={colour}")


def _blur_fill(width: int, height: int) -> str:
    """The picture at full width or height, centred on a blurred copy of itself zoomed to fill."""
    return (f"split[a][b];[a]scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},"
            f"boxblur=20:2[bg];[b]scale={width}:{height}:force_original_aspect_ratio=decrease[fg];"
            "[bg][fg]overlay=(W-w)/2:(H-h)/2")


EDITS = {  # name -> ffmpeg video filter applied to a source
    "SD re-encode, no bars (control)": "scale=-2:360",
    "pad 4:3, black": _fit(640, 480, "black"),
    "pad 9:16, black": _fit(360, 640, "black"),
    "pad 1:1, grey": _fit(480, 480, "0x808080"),
    "pad 4:3, black, greyscale": _fit(640, 480, "black") + ",format=gray",
    "pad 4:3, grey, logo on the picture": _fit(640, 480, "0x808080")
    + ",drawbox=x=iw/2+24:y=ih/2-60:w=48:h=24:color=white@0.9:t=fill",
    "pad 4:3, grey, watermark in a corner": _fit(640, 480, "0x808080")
    + ",drawbox=x=iw/2+200:y=ih/2+120:w=32:h=16:color=white@0.6:t=fill",
    "pad 4:3, black, logo in a bar": _fit(640, 480, "black") + ",drawbox=x=4:y=4:w=24:h=12:color=white@0.9:t=fill",
    "blurred fill 9:16": _blur_fill(360, 640),
    "blurred fill 1:1": _blur_fill(480, 480),
    "SD re-encode, first 0.25 s cut": "scale=-2:360",
    "SD re-encode, first 0.5 s cut": "scale=-2:360",
    "pad 4:3, black, first 0.5 s cut": _fit(640, 480, "black"),
}
# an upload rarely starts on the original's first frame: these start later (seconds cut), so their key
# frames fall between the frames an indicator sampled once a second kept
EDIT_STARTS = {"SD re-encode, first 0.25 s cut": 0.25, "SD re-encode, first 0.5 s cut": 0.5,
               "pad 4:3, black, first 0.5 s cut": 0.5}

EXCERPTS = ((13.3, 3), (13.3, 5), (13.3, 10), (13.3, 20), (13.3, 40),
            (31.7, 3), (31.7, 5), (31.7, 10), (31.7, 20), (31.7, 40))  # (start, seconds) of the long video


def bar_sources() -> dict[str, Path]:
    """The unedited sources: Meta's two videos without bars and the generated pans (8 s, 30 fps)."""
    from csadetect.media import synth

    out = {n: SHARED / "videos" / f"{n}.mp4" for n in BAR_SOURCES}
    for seed in SYNTH_SEEDS:
        path = DATA / "bars" / f"synth-{seed}.mp4"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            synth.synthetic_video(seed, path, seconds=8, fps=30, size=(640, 360))
        out[path.stem] = path
    return out


def edited_videos(sources: dict[str, Path]) -> dict[tuple[str, str], Path]:
    """Each source with each edit of :data:`EDITS`, x264 with a key frame every second (from the
    edit's start, :data:`EDIT_STARTS`)."""
    out = {}
    for name, src in sources.items():
        for i, (edit, vf) in enumerate(EDITS.items()):
            path = DATA / "bars" / f"{name}.edit{i}.mp4"
            if not path.exists():
                start = ["-ss", EDIT_STARTS[edit]] if edit in EDIT_STARTS else []
                _ffmpeg(*start, "-i", src, "-vf", vf, "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", 23,
                        "-force_key_frames", "expr:gte(t,n_forced*1)", "-pix_fmt", "yuv420p", "-threads", 2, path)
            out[(name, edit)] = path
    return out


def _bar_decisions(queries: dict, indicators: dict[str, list[VideoFrame]], settings: MatchSettings) -> dict:
    """Per edit: its own source found, other indicators matched, and the shares of both kinds."""
    signal, names = VpdqSignal(), list(indicators)
    values = [signal.indicator_values(SimpleNamespace(hashes=SimpleNamespace(frames=indicators[n])), settings)[0][1]
              for n in names]
    index = VpdqIndex(pa.chunked_array([pa.array(values)]), np.arange(len(names)), settings)
    out: dict[str, dict] = {}
    for (source, edit), frames in queries.items():
        groups = signal.probe(SimpleNamespace(frames=frames), settings) or []
        hits = {names[h.row] for h in index.query(groups)} if groups else set()
        t = out.setdefault(edit, {"found": [0, 0], "false": [0, 0], "bars": 0, "overlays": 0, "true_shares": [],
                                  "false_max": [0.0, 0.0]})
        t["bars"] += any(f.cropped for f in frames)
        t["overlays"] += any(f.cleaned for f in frames)
        for ind in names:
            shares = _shares(groups, indicators[ind], settings)
            if ind == source:
                t["found"][0] += ind in hits
                t["found"][1] += 1
                t["true_shares"].append(shares)
            else:
                t["false"][0] += ind in hits
                t["false"][1] += 1
                t["false_max"] = [max(a, b) for a, b in zip(t["false_max"], shares)]
    return out


def measure_bars() -> dict:
    sources = bar_sources()
    edits = edited_videos(sources)
    indicator_files = {**sources, **{n: SHARED / "videos" / f"{n}.mp4" for n in EXTRA_INDICATORS}}
    before = MatchSettings(video_bars=False, video_overlays=False, video_indicator_share=1e-9)  # query share alone
    bars_only = MatchSettings(video_overlays=False)  # the stop before static overlays were painted out
    rules = {"previous release": before, "bars only": bars_only, "now": MatchSettings()}
    out = {"sources": len(sources), "indicators": len(indicator_files), "rows": [], "shifted": list(EDIT_STARTS)}
    queries = {label: {k: list(hash_video(p.read_bytes(), seconds_per_hash=1.0, bars=settings.video_bars,
                                          overlays=settings.video_overlays).frames) for k, p in edits.items()}
               for label, settings in rules.items()}
    for ilabel, sph in (("from-media, 1 s (before)", 1.0), ("from-media, every frame (default)", 0.0)):
        made: dict[bool, dict] = {}  # indicators depend on video_bars only
        for label, settings in rules.items():
            if settings.video_bars not in made:
                made[settings.video_bars] = {n: hash_video_file(str(p), seconds_per_hash=sph, bars=settings.video_bars)
                                             for n, p in indicator_files.items()}
            for edit, t in _bar_decisions(queries[label], made[settings.video_bars], settings).items():
                out["rows"].append({"edit": edit, "indicators": ilabel, "rule": label, **t})
                print(f"{edit:36} {ilabel:24} {label:16} {t['found']} {t['false']} bars {t['bars']} overlays {t['overlays']}",
                      file=sys.stderr)
    out["excerpts"] = measure_excerpts(indicator_files)
    return out


def long_video(parts: dict[str, Path]) -> Path:
    """The bars benchmark's 8 indicator videos back to back (640x360, 30 fps), about 82 s."""
    d = DATA / "excerpts"
    d.mkdir(parents=True, exist_ok=True)
    out = d / "long.mp4"
    if not out.exists():
        scaled = []
        for i, src in enumerate(parts.values()):
            scaled.append(d / f"part{i}.mp4")
            _ffmpeg("-i", src, "-vf", "scale=640:360,setsar=1,fps=30", "-an", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", 18, "-pix_fmt", "yuv420p", scaled[-1])
        (d / "list.txt").write_text("".join(f"file '{p.resolve()}'\n" for p in scaled))
        _ffmpeg("-f", "concat", "-safe", 0, "-i", d / "list.txt", "-an", "-c:v", "libx264", "-preset", "veryfast",
                "-crf", 18, "-pix_fmt", "yuv420p", out)
    return out


def measure_excerpts(parts: dict[str, Path]) -> dict:
    """Excerpts (:data:`EXCERPTS`) of a long video, re-encoded at SD with a key frame each second and
    hashed as uploads, against that video's indicator made from media at 1 s and at every frame."""
    video = long_video(parts)
    settings = MatchSettings()
    indicators = {sph: hash_video_file(str(video), seconds_per_hash=sph) for sph in (1.0, 0.0)}
    rows = []
    for start, seconds in EXCERPTS:
        path = DATA / "excerpts" / f"excerpt-{start}-{seconds}.mp4"
        if not path.exists():
            _ffmpeg("-ss", start, "-t", seconds, "-i", video, "-vf", "scale=-2:360", "-an", "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", 23, "-force_key_frames", "expr:gte(t,n_forced*1)",
                    "-pix_fmt", "yuv420p", path)
        frames = list(hash_video(path.read_bytes(), seconds_per_hash=1.0).frames)
        row = {"start": start, "seconds": seconds}
        for sph, label in ((1.0, "1 s"), (0.0, "every frame")):
            t = _bar_decisions({("long", "x"): frames}, {"long": indicators[sph]}, settings)["x"]
            row[label] = {"found": bool(t["found"][0]), "shares": t["true_shares"][0]}
        rows.append(row)
        print(f"excerpt {start}+{seconds} s {row}", file=sys.stderr)
    frames = {label: len(VpdqSignal().indicator_values(SimpleNamespace(hashes=SimpleNamespace(frames=indicators[sph])),
                                                       settings)[0][1].split())
              for sph, label in ((1.0, "1 s"), (0.0, "every frame"))}
    return {"seconds": round(_duration(video), 1), "indicator_frames": frames, "rows": rows}


def machine() -> str:
    model = cpu_model()
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {ffmpeg.split(' Copyright')[0]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="synth clips only, no recall, nothing written")
    parser.add_argument("--render", action="store_true", help="format the saved measurement again")
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration (the least CPU time counts)")
    parser.add_argument("--only", choices=("speed", "recall", "bars"), help="measure one part again (the others are kept)")
    args = parser.parse_args(argv)
    if args.render:
        OUT.write_text(render(json.loads(RESULT.read_text()), OUT))
        return 0
    if not SHARED.is_dir() and not args.quick:
        print(f"the shared vPDQ test data is not at {SHARED}: run with --quick, or fetch it", file=sys.stderr)
        return 1
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    from csadetect.media import vpdq_worker

    result = {"machine": machine() + f"; pinned to core {core}", "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
              "max_gap_factor": vpdq_worker.MAX_GAP_FACTOR}
    if args.only:
        result = {**json.loads(RESULT.read_text()), **result}
    if args.only in (None, "speed"):
        result["speed"] = measure_speed(make_clips(args.quick), 1 if args.quick else args.repeat)
    if args.only in (None, "recall"):
        result["recall"] = [] if args.quick else measure_recall()
    if args.only in (None, "bars") and not args.quick:
        result["bars"] = measure_bars()
    result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.quick:
        print(render(result, OUT))
        return 0
    RESULT.write_text(json.dumps(result, indent=1))
    OUT.write_text(render(result, OUT))
    print(f"wrote {OUT.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
