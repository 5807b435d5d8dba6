"""Peak memory and time of one hostile upload each (issue 12 item 2): what a single event can cost.

Each hostile class is generated in a temporary folder (ffmpeg and PIL; nothing is kept or
committed) and hashed in a fresh subprocess exactly as ``HashMedia`` hashes an upload:
``hash_image_with_views`` with the preprocessing views for images, ``hash_video`` with the
``limits`` of ``csadetect/config/default.yaml`` for videos. In the subprocess, after imports and a
warm-up image, the settled RSS is read and the peak counter reset (``/proc/self/clear_refs``);
after the event, ``VmHWM`` minus the settled RSS is the worker's own peak above settled. Videos are
probed by ``ffprobe`` and decoded by a separate process (``csadetect.media.vpdq_worker``); the
largest peak RSS of those children is reported too, and "event" is the sum of both, the
conservative figure. The issue asks for <= 1 GB above the settled worker per event.

Classes: a 16000x16000 PNG frame in an MKV (the probe's 790 KB / 4.46 GB case), a 61-minute
static 720p video, a 16-bit grey PNG and a float TIFF just under the 50 Mpx image limit, a
decompression bomb above it (small PNG, 400 Mpx), an RGBA PNG just under it, and a legitimate 4K
video at the video pixel limit (accepted: the decode's own cost).

    .venv/bin/python -m benchmarks.bench_hostile             # all classes, a table on stdout
    .venv/bin/python -m benchmarks.bench_hostile --only png16 float
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from csadetect.config.settings import load_settings
from csadetect.media.hashing import MediaError, VideoLimits, hash_image_with_views, hash_video
from csadetect.media.preprocess import views as preprocess_views
from csadetect.media.synth import jpeg_bytes, synthetic_image

GB = 1 << 30
NEAR_LIMIT = (7000, 7000)  # 49 Mpx, under limits.max_pixels (50 Mpx)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)


def _gradient(size: tuple[int, int], dtype) -> np.ndarray:
    w, h = size
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    return ((x * 0.7 + y * 0.3) * (65535 if dtype == np.uint16 else 1)).astype(dtype)


def make_png_in_mkv(folder: Path) -> Path:
    out = folder / "png16000.mkv"
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=16000x16000", "-frames:v", "1", "-c:v", "png", str(out))
    return out


def make_long_static(folder: Path) -> Path:
    out = folder / "static-61min-720p.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=1280x720:r=25", "-t", "3660", "-c:v", "libx264",
            "-preset", "ultrafast", "-tune", "stillimage", str(out))
    return out


def make_uhd(folder: Path) -> Path:
    out = folder / "uhd-10s.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=3840x2160:r=25", "-t", "10", "-c:v", "libx264", "-preset", "ultrafast",
            str(out))
    return out


def make_png16(folder: Path) -> Path:
    out = folder / "grey16.png"
    Image.fromarray(_gradient(NEAR_LIMIT, np.uint16)).save(out, compress_level=9)  # mode I;16
    return out


def make_float(folder: Path) -> Path:
    out = folder / "float.tiff"
    arr = _gradient(NEAR_LIMIT, np.float32) * 3.0 - 1.0  # outside 0..255: the stretch path
    arr = np.round(arr, 2)  # few distinct values: the file compresses to fit max_content_bytes
    Image.fromarray(arr, "F").save(out, compression="tiff_adobe_deflate")
    return out


def make_bomb(folder: Path) -> Path:
    out = folder / "bomb-20000.png"
    Image.new("1", (20000, 20000)).save(out, optimize=True)
    return out


def make_rgba(folder: Path) -> Path:
    out = folder / "rgba.png"
    img = Image.new("RGBA", NEAR_LIMIT, (10, 200, 30, 128))
    img.save(out, compress_level=9)
    return out


CASES = {  # name -> (maker, kind, description)
    "mkv16000": (make_png_in_mkv, "video", "16000x16000 PNG frame in MKV"),
    "static61": (make_long_static, "video", "61-min static 720p video"),
    "png16": (make_png16, "image", "16-bit grey PNG, 49 Mpx"),
    "float": (make_float, "image", "float TIFF (mode F), 49 Mpx"),
    "bomb": (make_bomb, "image", "PNG bomb 20000x20000 (400 Mpx)"),
    "rgba": (make_rgba, "image", "RGBA PNG, 49 Mpx"),
    "uhd": (make_uhd, "video", "3840x2160 10 s video (accepted)"),
}


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure_one(kind: str, path: str) -> dict:
    """Hash one upload as HashMedia does; peak RSS above the settled process (run in a child)."""
    limits = load_settings().limits
    data = Path(path).read_bytes()
    hash_image_with_views(jpeg_bytes(synthetic_image(1)), preprocess=preprocess_views)  # warm-up
    settled = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
        fh.write("5")
    start = time.monotonic()
    try:
        if kind == "image":
            hash_image_with_views(data, max_pixels=limits.max_pixels, preprocess=preprocess_views)
        else:
            hash_video(data, seconds_per_hash=1.0, limits=VideoLimits.from_settings(limits))
        outcome = "accepted"
    except MediaError as exc:
        outcome = f"refused: {exc}"
    seconds = time.monotonic() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"bytes": len(data), "settled": settled, "peak_above": _status("VmHWM") - settled,
            "children_peak": children, "seconds": seconds, "outcome": outcome}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(CASES), help="run these classes only")
    ap.add_argument("--one", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)  # the child's entry
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        for name in args.only or list(CASES):
            maker, kind, what = CASES[name]
            path = maker(Path(tmp))
            done = subprocess.run([sys.executable, "-m", "benchmarks.bench_hostile", "--one", kind, str(path)],
                                  capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            path.unlink()
            rows.append((what, r))
    print("| class | file | worker peak above settled | decoder/probe peak | event (sum) | time | outcome |")
    print("|---|---:|---:|---:|---:|---:|---|")
    worst = 0
    for what, r in rows:
        event = r["peak_above"] + r["children_peak"]
        worst = max(worst, event)
        print(f"| {what} | {r['bytes'] / 1e6:.2f} MB | {r['peak_above'] / 1e6:.0f} MB | {r['children_peak'] / 1e6:.0f} MB "
              f"| {event / 1e6:.0f} MB | {r['seconds']:.2f} s | {r['outcome']} |")
    print(f"\nworst event: {worst / 1e6:.0f} MB above the settled worker (limit {GB / 1e6:.0f} MB): "
          f"{'ok' if worst <= GB else 'OVER'}")
    return 0 if worst <= GB else 1


if __name__ == "__main__":
    sys.exit(main())
