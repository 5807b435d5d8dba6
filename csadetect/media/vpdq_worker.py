"""The video decoder process: vPDQ of one video, run apart from the worker so it can be bounded.

:func:`csadetect.media.hashing.hash_video` starts ``python -m csadetect.media.vpdq_worker FD
SECONDS_PER_HASH MAX_DATA_BYTES PARENT_PID [MODE [BARS [OVERLAYS [FRAMED]]]]`` with the video's anonymous file (a memfd, or an
unlinked temp file) as descriptor ``FD``. This process first caps its own data segment
(``RLIMIT_DATA``, inherited by the FFmpeg processes it starts), so a stream whose frames grow past
what its metadata said cannot take the worker's memory; it is killed from outside when the
wall-clock budget runs out, and by the kernel when its parent dies (so are its FFmpeg children,
when it dies). It writes one line per hashed frame, ``frame quality hex timestamp``, to stdout and
nothing else (``frame quality hex timestamp VIEW`` for a frame's cropped or cleaned hash, below); it never
sees a file name.

How frames are chosen (``MODE``; benchmarks/video.md has the speed and recall of each):

* ``all``: Meta's ``vpdq.computeHash``. It decodes *every* frame of the video and hashes one each
  ``SECONDS_PER_HASH`` (by frame count); decoding is most of the cost (about 8x real time per core
  at 720p).
* ``keyframes``: the ``ffmpeg`` CLI (the same FFmpeg libraries vpdq links) decodes only the key
  frames (``-skip_frame nokey``: no P or B frame is decoded at all) and converts them to RGB as
  vpdq does (swscale, area, full size); about one per ``SECONDS_PER_HASH`` is kept (:func:`_thin`)
  and hashed at full size with the compiled PDQ (``_pdq.c``, else Meta's ``pdqhash``): the hash
  vPDQ gives that frame (bit for bit on Meta's test videos).
* ``auto`` (the default): ``keyframes`` when the key frames are dense enough (the container's key
  packets are checked before decoding, the decoded key frames after), none more
  than :data:`MAX_GAP_FACTOR` x ``SECONDS_PER_HASH`` from the next one, from the stream's first
  packet to its last (most uploads: phones and sites put one every 1-2 s); else ``all``. A video
  encoded with few key frames (a black first key frame and the rest predicted, say) therefore
  cannot shrink what is hashed: it is hashed as before, only not faster. With
  ``SECONDS_PER_HASH`` 0 (every frame) it is ``all``.

Bars (``BARS``, ``match.video_bars``): ``crop`` finds the video's letterbox or pillarbox bars once
from its first key frames (:mod:`csadetect.media.letterbox`) and, when it has bars, hashes each
chosen frame twice, whole (as before, so hashes made without bar removal still match) and cropped
to the picture inside the bars (so the same picture with other bars, or none, matches); ``whole``
(the default of the argument) hashes frames whole only. ``keyframes`` holds its first few key
frames until the bars are known; ``all`` looks at the first key frames first and, when there are
bars, decodes every frame through the ``ffmpeg`` CLI as vpdq would (:func:`cropped_frame_hashes`),
else runs vpdq as before.

Overlays (``OVERLAYS``, ``match.video_overlays``; ``keep``, the default of the argument, does
nothing): ``clean`` shows the key frames of the same window to
:class:`csadetect.media.overlay.VideoOverlays` and, when the video has static overlays over its
picture (a logo box that stays put while the picture moves), hashes each chosen frame once more
with them painted out (``cleaned``: of the picture inside the bars when there are bars). Key-frame
decoding only: ``all`` hashes no cleaned frames.

Framed (``FRAMED``, ``match.video_frames_pdq``; ``whole``, the default of the argument, does
nothing): ``framed`` also hashes each chosen frame cropped to its *own* bars, found in that frame
alone as a still picture's would be (:meth:`csadetect.media.letterbox.VideoBars.picture_box`),
when it has some and they are not the video's. The video's box stays settled per video for vPDQ
(a dark scene would be cut wrongly frame by frame); these hashes are only looked up among the
PDQ rows of known pictures (:mod:`csadetect.signals.pdq`), where a slideshow shows pictures of
several shapes, each with its own bars. Both modes (``all`` through the ``ffmpeg`` CLI, as with bars).

Exit codes: 0 done, 2 bad arguments, 3 out of memory (the data limit), 4 the video is unreadable.
It imports only the standard library until it knows which decoder it needs, to start quickly (and
numpy, for the bars, only when a frame's edge could be one: :func:`csadetect.media.letterbox.outer_uniform`,
:func:`~csadetect.media.letterbox.outer_blurred`). The
frames it writes are numbered and timed as vpdq numbers and times them (frame = time x frame rate).
"""
from __future__ import annotations

import collections
import ctypes
import itertools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from typing import Optional

from csadetect.media import letterbox, overlay  # standard library only: the decoder still starts light
from csadetect.media.box import Box

EXIT_USAGE, EXIT_MEMORY, EXIT_UNREADABLE = 2, 3, 4
MODES = ("auto", "keyframes", "all")
BARS = ("crop", "whole")  # BARS argument: crop frames to the picture inside letterbox/pillarbox bars, or not
OVERLAYS = ("clean", "keep")  # OVERLAYS argument: also hash frames with static overlays painted out, or not
FRAMED = ("framed", "whole")  # FRAMED argument: also hash each frame inside its own bars (a still picture's), or not
MAX_GAP_FACTOR = 2.0  # auto: the key frames stand in for the samples when none is further apart than this
_PR_SET_PDEATHSIG = 1
_PTS_TIME = re.compile(rb"\bpts_time:\s*(-?[0-9.]+)")

Frame = tuple[int, int, str, float, str]  # frame number, quality, 64-hex PDQ, timestamp (s), view
# what a hashed frame is: "" the whole frame, "cropped" the picture inside its bars, "cleaned" that
# picture (or the whole frame) with the video's static overlays painted out (keyframes mode only),
# "framed" the frame inside its own bars, found in that frame alone (FRAMED; for matching known pictures)
VIEWS = ("", "cropped", "cleaned", "framed")


class Unusable(Exception):
    """The key-frame decoder could not be used for this video (no FFmpeg, an error, too few key
    frames): ``auto`` falls back to ``all``."""


def _set_pdeathsig() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):  # not Linux: the budget's kill still applies
        return False


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the worker that started it dies (a killed worker leaves no
    decoder running, and so no descriptor keeping the upload's bytes alive)."""
    if not _set_pdeathsig():
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(EXIT_USAGE)


def _near_limit(max_data: int) -> bool:
    """Whether this process came close to its data limit (FFmpeg reports a failed allocation as
    a plain decoding error, so a failure here is put down to memory)."""
    return max_data > 0 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 >= max_data // 2


def _rate(text) -> float:
    try:
        num, _, den = str(text).partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return value if 0 < value < 1e6 else 0.0


def _float(text) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def stream_layout(fd: int) -> dict:
    """The first video stream's size, frame rate, where its packets start and end and when its key
    packets are (s), from ``ffprobe`` reading the container only (no frame is decoded)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise Unusable("no ffprobe")
    cmd = [ffprobe, "-v", "error", "-select_streams", "v:0", "-print_format", "json",
           "-show_entries",
           "stream=width,height,avg_frame_rate,r_frame_rate:packet=pts_time,dts_time,duration_time,flags",
           f"/proc/self/fd/{fd}"]
    done = subprocess.run(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, capture_output=True, check=False,
                          preexec_fn=_set_pdeathsig)
    try:
        info = json.loads(done.stdout or b"{}")
    except ValueError:
        info = {}
    streams, packets = info.get("streams") or [], info.get("packets") or []
    if done.returncode != 0 or not streams or not packets:
        raise Unusable("probe")
    stream = streams[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))  # as vpdq chooses
    starts, ends, keys = [], [], []
    for p in packets:
        t = _float(p.get("pts_time"))
        t = _float(p.get("dts_time")) if t is None else t
        if t is not None:
            starts.append(t)
            ends.append(t + (_float(p.get("duration_time")) or 0.0))
            if "K" in str(p.get("flags", "")):
                keys.append(t)
    if width <= 0 or height <= 0 or not fps or not starts:
        raise Unusable("layout")
    return {"width": width, "height": height, "fps": fps, "start": min(starts), "end": max(ends), "keys": sorted(keys)}


def _pdq_function():
    """``pdq(rgb24 bytes, rows, cols) -> (32 bytes, quality)``: the project's compiled PDQ
    (``csadetect/media/_pdq.c``: no numpy to import, a fifth of the time; it agrees with Meta's
    PDQ up to float rounding, tests/test_pdq_kernel.py), else Meta's ``pdqhash`` binding."""
    try:
        from csadetect.media import _pdq  # lazy: only the key-frame decoder hashes here
    except ImportError:  # pragma: no cover - only without a C compiler at install time
        import numpy as np
        import pdqhash

        def pdq(pixels: bytes, rows: int, cols: int) -> tuple[bytes, int]:
            bits, quality = pdqhash.compute(np.frombuffer(pixels, dtype=np.uint8).reshape(rows, cols, 3))
            return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), int(quality)

        return pdq
    return lambda pixels, rows, cols: _pdq.hashes(pixels, rows, cols, 3, False)


class _FrameTimes:
    """The ``pts_time`` of each frame ``showinfo`` logged, read from FFmpeg's log as it grows (FFmpeg
    logs a frame before it writes the frame out, so a frame's time is there once its pixels are)."""

    def __init__(self, fd: int):
        self.fd, self.offset, self.rest, self.times = fd, 0, b"", []

    def poll(self) -> list[float]:
        while chunk := os.pread(self.fd, 1 << 16, self.offset):
            self.offset += len(chunk)
            *lines, self.rest = (self.rest + chunk).split(b"\n")
            for line in lines:
                if b"[Parsed_showinfo_" in line and (m := _PTS_TIME.search(line)):
                    self.times.append(float(m.group(1)))
        return self.times


def _thin(frames, seconds_per_hash: float, end: float):
    """Of ``(time, pixels)`` key frames in order, those to hash: one at least ``seconds_per_hash``
    after the last one kept, and any other whose omission would leave more than
    ``MAX_GAP_FACTOR * seconds_per_hash`` to the next key frame (or to ``end``)."""
    longest = MAX_GAP_FACTOR * seconds_per_hash + 1e-6
    last = held = None
    for t, pixels in itertools.chain(frames, [(None, None)]):
        if held is not None:
            kept_t, kept = held
            nxt = end if t is None else t
            if last is None or kept_t - last >= seconds_per_hash - 1e-3 or nxt - last > longest:
                last = kept_t
                yield kept_t, kept
        held = None if t is None else (t, pixels)


def _observe(frames, *finders):
    """Pass ``(time, pixels)`` frames through, showing each to each of ``finders`` (a
    :class:`csadetect.media.letterbox.VideoBars`, a :class:`csadetect.media.overlay.VideoOverlays`,
    or None) until it has seen enough."""
    finders = [f for f in finders if f is not None]
    for t, pixels in frames:
        for finder in finders:
            if not finder.settled:
                finder.add(pixels)
        yield t, pixels


def _drain(held: collections.deque):
    while held:
        yield held.popleft()


def _with_crops(frames, bars, width: int, height: int, overlays=None):
    """``(time, pixels, crop, cleaned, box)`` of ``(time, pixels)`` frames: ``crop`` is ``(pixels, rows,
    cols)`` of the picture inside the video's bars when ``bars`` finds them, else None; ``cleaned``
    the same of that picture (or the whole frame) with the static overlays ``overlays`` finds painted
    out, else None; ``box`` the video's content box (None without bars). Frames are held (at most
    ``bars.limit``, or the overlay finder's window) until the finders have seen their window of key
    frames (they see them ahead of this, through :func:`_observe`)."""
    finders = [f for f in (bars, overlays) if f is not None]
    frames, held = iter(frames), collections.deque()
    if finders:
        for item in frames:
            held.append(item)
            if all(f.settled for f in finders):
                break
    box = bars.box() if bars is not None else None
    painted = overlays.boxes(box) if overlays is not None else []
    if box is not None:  # the overlays' boxes in the cropped picture's pixels
        painted = [(l - box[0], t - box[1], r - box[0], b - box[1]) for l, t, r, b in painted]
    for t, pixels in itertools.chain(_drain(held), frames):
        crop = None if box is None else _crop(pixels, width, box)
        cleaned = None
        if painted:
            data, rows, cols = crop or (pixels, height, width)
            cleaned = overlay.paint_out(data, cols, rows, painted), rows, cols
        yield t, pixels, crop, cleaned, box


def _framed(framer, pixels: bytes, width: int, box: Optional[Box]) -> Optional[tuple[bytes, int, int]]:
    """``(pixels, rows, cols)`` of the frame inside its own bars (``framer``: a
    :class:`letterbox.VideoBars` of the frame size, or None for no framed view), when it has some
    and they are not the video's ``box``; else None."""
    own = None if framer is None else framer.picture_box(pixels)
    return None if own is None or own == box else _crop(pixels, width, own)


def _crop(pixels: bytes, width: int, box: Box) -> tuple[bytes, int, int]:
    return letterbox.crop(pixels, width, box), box[3] - box[1], box[2] - box[0]


def _decode_keyframes(fd: int, layout: dict, seconds_per_hash: float, bars: bool = False,
                      overlays: bool = False, framed: bool = False) -> tuple[list[float], list[tuple[float, int, str, str]]]:
    """The times of all key frames FFmpeg decodes, and ``(time, quality, 64-hex PDQ, view)`` of
    those :func:`_thin` keeps (``view``: one of :data:`VIEWS`). Frames are converted to RGB as vpdq
    converts them (swscale, area, to the stream's size) and hashed as they arrive (two decoded
    frames at most are held; with ``bars`` or ``overlays``, up to
    :data:`csadetect.media.letterbox.FRAMES` until the video's bars and overlays are known). When
    it has bars each frame is hashed again cropped to the picture inside them (``cropped``); when
    it has static overlays (:mod:`csadetect.media.overlay`), once more with them painted out
    (``cleaned``); with ``framed``, once more inside its own bars when it has some (``framed``).
    ``-copyts``: times as the container states them, as ``stream_layout`` reads them."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None or not hasattr(os, "memfd_create"):
        raise Unusable("no ffmpeg")
    pdq = _pdq_function()
    width, height = layout["width"], layout["height"]
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-threads", "1", "-skip_frame", "nokey",
           "-copyts", "-i", f"/proc/self/fd/{fd}", "-map", "0:v:0", "-an", "-sn", "-dn", "-filter_threads", "1",
           "-vf", f"showinfo,scale={width}:{height}:flags=area,format=rgb24",
           "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1"]
    size = width * height * 3
    log = os.memfd_create("csad-ffmpeg-log", os.MFD_CLOEXEC)  # stderr: frame times (no pipe to fill)
    log_times, keyframes, hashes = _FrameTimes(log), [], []

    def decoded():
        while len(pixels := proc.stdout.read(size)) == size:
            seen = log_times.poll()
            if len(seen) <= len(keyframes):  # logged before it is written out, perhaps a few frames ahead
                raise Unusable("frame times")
            keyframes.append(seen[len(keyframes)])
            yield keyframes[-1], pixels
        if pixels:
            raise Unusable("truncated frame")

    finder = letterbox.VideoBars(width, height) if bars else None
    marks = None
    if overlays:  # the bar finder's grid of the same key frames when there is one: sampled once
        marks = (overlay.VideoOverlays(width, height, grid=finder.grid) if finder
                 else overlay.VideoOverlays(width, height, letterbox.window(width, height)))
    framer = (finder or letterbox.VideoBars(width, height, frames=1)) if framed else None  # picture_box adds nothing
    try:
        with subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                              preexec_fn=_set_pdeathsig) as proc:
            try:
                kept = _thin(_observe(decoded(), finder, marks), seconds_per_hash, layout["end"])
                for t, pixels, crop, cleaned, box in _with_crops(kept, finder, width, height, marks):
                    packed, quality = pdq(pixels, height, width)
                    hashes.append((t, quality, packed.hex(), ""))
                    own = _framed(framer, pixels, width, box)
                    for view, picture in (("cropped", crop), ("cleaned", cleaned), ("framed", own)):
                        if picture is not None:
                            packed, quality = pdq(*picture)
                            hashes.append((t, quality, packed.hex(), view))
            except BaseException:
                proc.kill()
                raise
    finally:
        os.close(log)
    if proc.returncode != 0 or not hashes:
        raise Unusable("decode")
    return keyframes, hashes


def _check_gaps(times: list[float], layout: dict, seconds_per_hash: float) -> None:
    edges = [layout["start"], *times, layout["end"]]
    if max(b - a for a, b in zip(edges, edges[1:])) > MAX_GAP_FACTOR * seconds_per_hash + 1e-6:
        raise Unusable("key frames too sparse")


def keyframe_hashes(fd: int, seconds_per_hash: float, check_gaps: bool, bars: bool = False,
                    overlays: bool = False, framed: bool = False) -> list[Frame]:
    """vPDQ frames of the video's key frames (the module's ``keyframes`` mode). With
    ``check_gaps``, raises Unusable when two key frames, or the first and the stream's first
    packet, or the last and its end, lie more than ``MAX_GAP_FACTOR * seconds_per_hash`` apart.
    With ``bars``, a video with bars also has each frame hashed cropped to its content box
    (:mod:`csadetect.media.letterbox`); with ``overlays``, a video with static overlays has each
    frame hashed once more with them painted out (:mod:`csadetect.media.overlay`); with ``framed``,
    each frame with bars of its own once more inside them (``framed``)."""
    layout = stream_layout(fd)
    if check_gaps:  # from the container's key packets first, so a sparse video is not decoded twice
        _check_gaps(layout["keys"], layout, seconds_per_hash)
    keyframes, hashes = _decode_keyframes(fd, layout, seconds_per_hash, bars, overlays, framed)
    if check_gaps:  # and from the frames the decoder took for key frames
        _check_gaps(keyframes, layout, seconds_per_hash)
    fps, out = layout["fps"], []
    for t, quality, hexhash, view in hashes:  # numbered and timed as vpdq numbers and times frames
        number = max(int(round((t - layout["start"]) * fps)), 0)
        out.append((number, quality, hexhash, number / fps, view))
    return out


def _ffmpeg_frames(cmd: list[str], fd: int, size: int):
    """The raw frames of ``size`` bytes an ``ffmpeg ... -f rawvideo pipe:1`` command writes
    (FFmpeg is killed when the caller stops early)."""
    with subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, preexec_fn=_set_pdeathsig) as proc:
        try:
            while len(pixels := proc.stdout.read(size)) == size:
                yield pixels
        finally:
            proc.kill()


def video_box(fd: int, layout: dict) -> Optional[Box]:
    """The content box of the video's bars from its first key frames (the frames, and the
    conversion, the key-frame decoder shows :class:`letterbox.VideoBars`), or None."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise Unusable("no ffmpeg")
    width, height = layout["width"], layout["height"]
    bars = letterbox.VideoBars(width, height)
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1", "-skip_frame", "nokey",
           "-i", f"/proc/self/fd/{fd}", "-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", str(bars.limit),
           "-vf", f"scale={width}:{height}:flags=area,format=rgb24", "-fps_mode", "passthrough", "-f", "rawvideo",
           "pipe:1"]
    for pixels in _ffmpeg_frames(cmd, fd, width * height * 3):
        bars.add(pixels)
        if bars.settled:
            break
    return bars.box()


def cropped_frame_hashes(fd: int, seconds_per_hash: float, bars: bool = True,
                         framed: bool = False) -> Optional[list[Frame]]:
    """vPDQ of every ``seconds_per_hash`` (by frame count, as vpdq samples) of the video's frames,
    whole and (``bars``) cropped to its content box, through the ``ffmpeg`` CLI (the conversion
    vpdq makes: the whole frames hash as vpdq hashes them), or None when the video has no bars
    (:func:`video_box`) and ``framed`` is off: vpdq then hashes it. With ``framed``, each frame
    with bars of its own is hashed once more inside them (``framed``)."""
    layout = stream_layout(fd)
    box = video_box(fd, layout) if bars else None
    if box is None and not framed:
        return None
    fps, width, height = layout["fps"], layout["width"], layout["height"]
    every = max(1, int(seconds_per_hash * fps))
    cmd = [shutil.which("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
           "-i", f"/proc/self/fd/{fd}", "-map", "0:v:0", "-an", "-sn", "-dn", "-filter_threads", "1",
           "-vf", f"select=not(mod(n\\,{every})),scale={width}:{height}:flags=area,format=rgb24",
           "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1"]
    pdq, out = _pdq_function(), []
    framer = letterbox.VideoBars(width, height, frames=1) if framed else None
    for i, pixels in enumerate(_ffmpeg_frames(cmd, fd, width * height * 3)):
        number = i * every
        views = (("", (pixels, height, width)), ("cropped", None if box is None else _crop(pixels, width, box)),
                 ("framed", _framed(framer, pixels, width, box)))
        for view, picture in views:
            if picture is None:
                continue
            packed, quality = pdq(*picture)
            out.append((number, quality, packed.hex(), number / fps, view))
    if not out:
        raise Unusable("decode")
    return out


def all_frame_hashes(fd: int, seconds_per_hash: float, bars: bool = False, framed: bool = False) -> list[Frame]:
    """vPDQ as Meta's ``vpdq.computeHash`` makes it (the module's ``all`` mode); with ``bars``,
    of the frames whole and cropped to the video's content box when it has bars, with ``framed``
    also inside each frame's own bars (:func:`cropped_frame_hashes`; if that path cannot be used,
    vpdq hashes the frames whole)."""
    if bars or framed:
        try:
            cropped = cropped_frame_hashes(fd, seconds_per_hash, bars, framed)
        except MemoryError:
            raise
        except Exception:  # Unusable, or FFmpeg did what was not foreseen: vpdq decides, as without bars
            cropped = None
        if cropped is not None:
            return cropped
    import vpdq  # lazy: after the limit is set, so FFmpeg's allocations count against it

    features = vpdq.computeHash(
        input_video_filename=f"/proc/self/fd/{fd}",
        seconds_per_hash=seconds_per_hash,
        downsample_width=0,
        downsample_height=0,
        thread_count=1,
    )
    return [(int(f.frame_number), int(f.quality), f.hex, float(f.timestamp), "") for f in features or ()]


def hash_frames(fd: int, seconds_per_hash: float, mode: str = "auto", bars: bool = False,
                overlays: bool = False, framed: bool = False) -> list[Frame]:
    """The vPDQ frames of the video in descriptor ``fd`` by ``mode`` (see the module's docstring),
    with ``bars`` each also hashed cropped to the picture inside letterbox or pillarbox bars, with
    ``overlays`` (key frames only) also with the video's static overlays painted out, with
    ``framed`` also inside its own bars.
    Raises what vpdq raises for an unreadable video, and Unusable when ``keyframes`` cannot be used."""
    if mode == "keyframes" or (mode == "auto" and seconds_per_hash > 0):
        try:
            return keyframe_hashes(fd, seconds_per_hash, check_gaps=mode == "auto", bars=bars, overlays=overlays,
                                   framed=framed)
        except MemoryError:
            raise
        except Exception:  # Unusable, or anything FFmpeg's output did that was not foreseen: vpdq decides
            if mode == "keyframes":
                raise
    return all_frame_hashes(fd, seconds_per_hash, bars, framed)


def main(argv: list[str]) -> int:
    try:
        fd, seconds_per_hash, max_data, parent = int(argv[0]), float(argv[1]), int(argv[2]), int(argv[3])
        mode = argv[4] if len(argv) > 4 else "auto"
        bars = argv[5] if len(argv) > 5 else "whole"
        overlays = argv[6] if len(argv) > 6 else "keep"
        framed = argv[7] if len(argv) > 7 else "whole"
    except (IndexError, ValueError):
        return EXIT_USAGE
    if (mode not in MODES or bars not in BARS or overlays not in OVERLAYS or framed not in FRAMED or len(argv) > 8
            or not seconds_per_hash >= 0):
        return EXIT_USAGE
    _die_with_parent(parent)
    if max_data > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (max_data, max_data))
    try:
        frames = hash_frames(fd, seconds_per_hash, mode, bars == "crop", overlays == "clean", framed == "framed")
    except MemoryError:
        return EXIT_MEMORY
    except Exception:  # vpdq raises plain exceptions for unreadable input
        return EXIT_MEMORY if _near_limit(max_data) else EXIT_UNREADABLE
    out = sys.stdout
    for number, quality, hexhash, timestamp, view in frames:
        out.write(f"{number} {quality} {hexhash} {timestamp!r}{' ' + view if view else ''}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
