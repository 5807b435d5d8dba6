"""Bounded resources for every input and content_uri only where the operator allows (issue 12
items 2 and 3): video limits from container metadata before decoding, the decode's wall-clock
budget and memory limit, no plaintext temp file (not even after a killed worker), high-bit-depth
images without float64 copies, and the content_uri allow-list with reasons that name the rule."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, ContentSettings, Limits, load_settings
from csadetect.events.event import make_event, parse_event
from csadetect.media import hashing, synth
from csadetect.media.hashing import MediaError, VideoLimits, hamming, hash_image, hash_video, load_image
from csadetect.transforms import content
from csadetect.transforms.content import ResolveContentFn, UriPolicy, UriRefused, glob_prefix, read_uri

REPO = Path(__file__).resolve().parents[1]
need_ffmpeg = pytest.mark.skipif(not (synth.ffmpeg_available() and hashing.shutil.which("ffprobe")),
                                 reason="ffmpeg/ffprobe CLI not installed (make sysdeps installs them)")


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    if not (synth.ffmpeg_available() and hashing.shutil.which("ffprobe")):
        pytest.skip("ffmpeg/ffprobe CLI not installed (make sysdeps installs them)")
    d = tmp_path_factory.mktemp("videos")
    # 61 minutes of a static picture at a tiny size: cheap to make, long by its metadata
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=2", "-t", 3660, "-c:v", "libx264", "-preset",
            "ultrafast", d / "long.mp4")
    # one 4000x4000 PNG frame in Matroska (16 Mpx, above the 8.3 Mpx video limit; 50 KB on disk)
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=4000x4000", "-frames:v", 1, "-c:v", "png", d / "big.mkv")
    # 2 minutes of changing 640x360 pictures at 50 fps: takes seconds to decode, probes at once
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=640x360:r=50", "-t", 120, "-c:v", "libx264", "-preset", "ultrafast",
            d / "slow.mp4")
    synth.synthetic_video(7, d / "small.mp4")  # 4 s at 5 fps, 320x240
    return {p.stem: p.read_bytes() for p in d.iterdir()}


# --- video limits, checked from metadata before decoding -------------------------------------------------


def test_video_limits_come_from_the_settings():
    limits = VideoLimits.from_settings(load_settings().limits)
    assert limits == VideoLimits()  # default.yaml and the dataclass agree
    assert limits.max_seconds == 600 and limits.max_pixels == 3840 * 2160 and limits.max_hashed_frames == 3600


def test_long_static_video_is_refused_from_metadata_fast(videos):
    start = time.monotonic()
    with pytest.raises(MediaError, match=r"^video longer than 600 s$"):
        hash_video(videos["long"])
    assert time.monotonic() - start < 3  # the probe's 176 s decode is gone


def test_huge_frame_is_refused_before_decoding(videos):
    start = time.monotonic()
    with pytest.raises(MediaError, match="pixel limit 8294400"):
        hash_video(videos["big"])
    assert time.monotonic() - start < 3
    # a raised limit lets the same file through the probe: the refusal was the rule, not the file
    assert hash_video(videos["big"], limits=VideoLimits(max_pixels=16_000_000)).frames


@pytest.mark.parametrize("limits, rule", [
    (VideoLimits(max_decoded_frames=10), "more than 10 frames"),
    (VideoLimits(max_hashed_frames=2), "more than 2 hashed frames"),
    (VideoLimits(max_seconds=3), "longer than 3 s"),
])
def test_each_metadata_rule_is_named(videos, limits, rule):
    with pytest.raises(MediaError) as err:
        hash_video(videos["small"], limits=limits)
    assert rule in str(err.value) and "\n" not in str(err.value)


def test_decode_budget_kills_the_decoder(videos):
    start = time.monotonic()
    with pytest.raises(MediaError, match="exceeded the budget of 0.5 s"):
        hash_video(videos["slow"], limits=VideoLimits(budget_seconds=0.5))
    assert time.monotonic() - start < 3


def test_decoder_memory_limit(videos):
    with pytest.raises(MediaError, match="memory limit"):
        hash_video(videos["slow"], limits=VideoLimits(max_memory_bytes=32 << 20))


def test_video_within_limits_hashes_as_the_reference(videos, tmp_path):
    (tmp_path / "v.mp4").write_bytes(videos["small"])
    got = hash_video(videos["small"], seconds_per_hash=1.0)
    assert got.frames == tuple(hashing.hash_video_file(str(tmp_path / "v.mp4"), seconds_per_hash=1.0))
    assert len(got.frames) == 4 and got.sha256 == hashing.crypto_hashes(videos["small"])["sha256"]


def test_unreadable_video_is_one_line():
    for junk in (b"\x00" * 1000, b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8):
        with pytest.raises(MediaError, match="unreadable video") as err:
            hash_video(junk)
        assert "\n" not in str(err.value)


# --- no plaintext temp file ---------------------------------------------------------------------------------


def _spy_on_decoder(monkeypatch, tmp_path, seen):
    real = hashing.subprocess.run

    def spy(cmd, *args, **kwargs):
        fd = kwargs["pass_fds"][0]
        seen.append((sorted(p.name for p in tmp_path.iterdir()), os.readlink(f"/proc/self/fd/{fd}")))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(hashing.subprocess, "run", spy)


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "unlinked-tempfile"])
def test_upload_has_no_name_on_disk_while_hashing(videos, tmp_path, monkeypatch, memfd):
    monkeypatch.setattr(hashing.tempfile, "tempdir", str(tmp_path))
    if not memfd:
        monkeypatch.delattr(os, "memfd_create")
    seen = []
    _spy_on_decoder(monkeypatch, tmp_path, seen)
    assert hash_video(videos["small"]).frames
    assert len(seen) == 2  # ffprobe, then the decoder
    for names, target in seen:
        assert names == []  # no csad-* (or any) file in the temp dir while ffprobe and vPDQ read it
        assert target.startswith("/memfd:") if memfd else target.endswith("(deleted)")
    assert list(tmp_path.iterdir()) == []


def test_killed_worker_leaves_no_plaintext_and_no_decoder(videos, tmp_path):
    """A worker SIGKILLed mid-decode: no csad-* file in its temp dir, and its decoder dies too."""
    video = tmp_path / "in" / "slow.mp4"
    video.parent.mkdir()
    video.write_bytes(videos["slow"])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    script = textwrap.dedent(f"""
        import os, sys
        del os.memfd_create  # the fallback: a named temp file, unlinked once opened
        from csadetect.media.hashing import hash_video
        hash_video(open({str(video)!r}, "rb").read())
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)})
    decoder = None
    deadline = time.monotonic() + 30
    while decoder is None and time.monotonic() < deadline and worker.poll() is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"vpdq_worker" in cmdline and ppid == worker.pid:
                decoder = int(pid)
        time.sleep(0.02)
    assert decoder is not None, "the decoder process did not start"
    assert list(tmp.iterdir()) == []  # mid-decode: nothing with a name
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    for _ in range(100):  # PR_SET_PDEATHSIG: the kernel kills the orphaned decoder
        if not Path(f"/proc/{decoder}").exists() or "Z" in Path(f"/proc/{decoder}/stat").read_text().split(")")[1][:3]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the decoder outlived its worker")
    assert list(tmp.iterdir()) == []


# --- high-bit-depth images ---------------------------------------------------------------------------------------


def _grey(seed=5, size=(900, 600)) -> np.ndarray:
    return np.asarray(synth.synthetic_image(seed, size).convert("L"), dtype=np.float32)


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("make, fmt", [
    (lambda g: Image.fromarray((g * 257).astype(np.uint16)), "PNG"),  # 16-bit grey PNG, mode I;16
    (lambda g: Image.fromarray((g * 1000 - 70000).astype(np.int32)), "TIFF"),  # mode I, negative values
    (lambda g: Image.fromarray(g / 255 * 3 - 1), "TIFF"),  # mode F outside 0..255: stretched
    (lambda g: Image.fromarray(g), "TIFF"),  # mode F within 0..255: kept
])
def test_high_bit_depth_images_hash_as_their_8_bit_picture(make, fmt):
    g = _grey()
    reference = hash_image(_encoded(Image.fromarray(g.astype(np.uint8), "L"), "PNG"))
    img = make(g)
    assert img.mode in ("I;16", "I", "F")
    got = hash_image(_encoded(img, fmt))
    assert hamming(got.pdq, reference.pdq) <= 8 and got.quality >= 90


def test_float_image_with_nan_and_infinities_hashes():
    g = _grey() / 255
    g[::7, ::5] = np.nan
    g[3, :] = np.inf
    g[5, :] = -np.inf
    h = hash_image(_encoded(Image.fromarray(g), "TIFF"))
    assert len(h.pdq) == 32


@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_high_bit_depth_conversion_makes_no_float64_copy(mode):
    """numpy's allocations (traced by tracemalloc) stay at a band of rows, far from the float64
    copy of the whole picture the old conversion made (8 bytes per pixel)."""
    side = 3000  # 9 Mpx: a float64 copy is 72 MB
    g = np.linspace(0, 60000, side * side, dtype=np.float32).reshape(side, side)
    img = Image.fromarray(g.astype(np.uint16)) if mode == "I;16" else Image.fromarray(g)
    data = _encoded(img, "PNG" if mode == "I;16" else "TIFF")
    for max_side in (hashing.HASH_SIDE, 0):  # shrunk first (the pipeline), and at full size
        tracemalloc.start()
        try:
            out = load_image(data, max_side=max_side)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert out.mode == "RGB"
        # full size: the 8-bit result (1 B/px) plus a band; shrunk: bands only. float64: 8 B/px
        assert peak < (3 * side * side if max_side == 0 else 16 * hashing._CHUNK_PIXELS), peak


# --- content_uri: only where the operator allows ----------------------------------------------------------------


def _resolve(uri: str, prefixes=(), timeout=5.0, max_bytes=1000, extra=()):
    fn = ResolveContentFn(Limits(max_content_bytes=max_bytes),
                          ContentSettings(allowed_uri_prefixes=tuple(prefixes), read_timeout_seconds=timeout), extra)
    fn.setup()
    event = parse_event(json.dumps({k: v for k, v in make_event("e-1", b"", content_uri=uri).items()
                                    if k != "content_b64"}).encode())
    out = list(fn.process(event))
    assert len(out) == 1
    return out[0]


def _reason(out, uri: str) -> str:
    tag = getattr(out, "tag", None)
    assert tag == "dead_letter", out
    letter = out.value
    assert letter.stage == "content" and letter.event_id == "e-1"
    assert uri not in letter.reason and "\n" not in letter.reason
    for part in Path(uri).parts[1:]:  # no piece of the path either
        assert len(part) < 5 or part not in letter.reason, letter.reason
    return letter.reason


@pytest.fixture
def uploads(tmp_path):
    allowed = tmp_path / "uploads"
    allowed.mkdir()
    (allowed / "a.jpg").write_bytes(b"\xff\xd8picture")
    (tmp_path / "private.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----")
    return allowed


def test_default_allows_no_uri(uploads):
    assert load_settings().content.allowed_uri_prefixes == ()
    out = _resolve(str(uploads / "a.jpg"))
    assert _reason(out, str(uploads / "a.jpg")) == "content_uri is a local path and no local prefix is allowed"
    out = _resolve("gs://provider-uploads/a.jpg")
    assert _reason(out, "gs://provider-uploads/a.jpg") == "content_uri is not under an allowed prefix"


def test_allowed_local_prefix_is_read(uploads):
    out = _resolve(str(uploads / "a.jpg"), [str(uploads) + "/"])
    assert out.content == b"\xff\xd8picture" and out.event_id == "e-1"


@pytest.mark.parametrize("where, rule", [
    (lambda up: up.parent / "private.pem", "not under an allowed prefix"),
    (lambda up: f"{up}/../private.pem", "not under an allowed prefix"),
    (lambda up: up.parent / "uploads-evil" / "a.jpg", "not under an allowed prefix"),
    (lambda up: "/proc/self/environ", "under /proc, /sys or /dev"),
    (lambda up: "/dev/zero", "under /proc, /sys or /dev"),
    (lambda up: up / "link", "not under an allowed prefix"),  # a symbolic link out of the folder
    (lambda up: up / "environ", "under /proc, /sys or /dev"),  # ... into /proc
    (lambda up: up / "fifo", "not a regular file"),
    (lambda up: up / "dir", "not a regular file"),
    (lambda up: up / "big.jpg", "content exceeds the limit of 1000 bytes"),
    (lambda up: up / "empty.jpg", "content is empty"),
    (lambda up: up / "nope.jpg", "content_uri unreadable (FileNotFoundError)"),
])
def test_local_reads_refused_by_rule(uploads, where, rule):
    (uploads / "link").symlink_to(uploads.parent / "private.pem")
    (uploads / "environ").symlink_to("/proc/self/environ")
    os.mkfifo(uploads / "fifo")  # opening it for reading would block the worker
    (uploads / "dir").mkdir()
    (uploads / "big.jpg").write_bytes(b"x" * 1001)
    (uploads / "empty.jpg").write_bytes(b"")
    uri = str(where(uploads))
    start = time.monotonic()
    out = _resolve(uri, [str(uploads) + "/"])
    assert time.monotonic() - start < 3
    assert rule in _reason(out, uri)


def test_proc_is_refused_even_under_a_wide_prefix():
    policy = UriPolicy(["/"])  # settings refuse "/": the reader refuses /proc on its own as well
    for uri in ("/proc/self/environ", "/sys/kernel/notes", "/dev/null"):
        with pytest.raises(UriRefused, match="/proc, /sys or /dev"):
            read_uri(uri, 1000, policy)


def test_url_prefixes(monkeypatch):
    opened = []

    class Fake(io.BytesIO):
        pass

    monkeypatch.setattr(content.FileSystems, "open", lambda uri, **kw: (opened.append(uri), Fake(b"bytes"))[1])
    prefixes = ["gs://provider-uploads/"]
    assert _resolve("gs://provider-uploads/u/1.jpg", prefixes).content == b"bytes"
    for uri, rule in [
        ("gs://provider-uploads-other/1.jpg", "not under an allowed prefix"),
        ("gs://other/provider-uploads/1.jpg", "not under an allowed prefix"),
        ("gs://provider-uploads/../other/1.jpg", "'.' or '..' segment"),
        ("s3://provider-uploads/1.jpg", "not under an allowed prefix"),
        ("file:///etc/passwd", "file:// is not allowed"),
        ("gs://provider-uploads/a\\..\\b.jpg", "malformed"),
    ]:
        assert rule in _reason(_resolve(uri, prefixes), uri)
    assert opened == ["gs://provider-uploads/u/1.jpg"]


def test_url_read_time_limit(monkeypatch):
    class Stalled(io.RawIOBase):
        def read(self, n=-1):
            time.sleep(10)
            return b""

    monkeypatch.setattr(content.FileSystems, "open", lambda uri, **kw: Stalled())
    start = time.monotonic()
    out = _resolve("gs://provider-uploads/slow.jpg", ["gs://provider-uploads/"], timeout=0.3)
    assert time.monotonic() - start < 2
    assert _reason(out, "gs://provider-uploads/slow.jpg") == "content_uri read took longer than 0.3 s"


def test_media_glob_folder_is_allowed(uploads):
    prefix = glob_prefix(str(uploads / "*.jpg"))
    assert prefix == str(uploads.resolve()) + "/"
    assert _resolve(str(uploads / "a.jpg"), extra=[prefix]).content
    assert glob_prefix("gs://b/in/*.jpg") == "gs://b/in/"


@pytest.mark.parametrize("prefixes, rule", [
    (["/"], "may not allow '/', /proc"),
    (["/proc/"], "may not allow '/', /proc"),
    (["/srv/uploads"], "must end with '/'"),
    (["gs://provider-uploads"], "must end with '/'"),
    (["gs://"], "must name a bucket"),
    (["uploads/"], "absolute directory"),
    (["file:///srv/"], "not file://"),
])
def test_unsafe_prefixes_fail_at_start_up(prefixes, rule):
    with pytest.raises(ConfigError, match=rule):
        load_settings(overrides={"content": {"allowed_uri_prefixes": prefixes}})


def test_run_refuses_to_start_without_ffprobe(monkeypatch):
    """Without ffprobe every video would be dead-lettered: the pipeline refuses to start, in one line."""
    from csadetect.config.settings import ConfigError
    from csadetect.pipelines import detect

    monkeypatch.setattr(detect.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="^ffprobe not found on PATH"):
        detect.check_video_probe()
    monkeypatch.undo()
    detect.check_video_probe()  # this machine has FFmpeg (make sysdeps)
