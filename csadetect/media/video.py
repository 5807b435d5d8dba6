"""Hashing a video: vPDQ frame hashes and the digests of its bytes, an upload's within bounds.

Bounds (issue 12): an uploaded video (:func:`hash_video`) is checked against
:class:`VideoLimits` from its container's metadata (``ffprobe``) before a frame is decoded, then
decoded by a child process (:mod:`csadetect.media.vpdq_worker`) under a memory limit and a
wall-clock budget; its bytes sit in an anonymous memory file, never in a named temp file.
:func:`hash_video_file` reads the operator's own files (indicator building, ``csadetect hash``)
in-process, without those bounds. Callers import these from :mod:`csadetect.media.hashing`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

from csadetect.core.fd2 import captured_fd2
from csadetect.media import vpdq_worker
from csadetect.media.hash_results import DIGESTS, MediaError, VideoFrame, VideoHashes, crypto_hashes


def hash_video_file(path: str, seconds_per_hash: float = 1.0, downsample: int = 0, threads: int = 1,
                    bars: bool = True) -> list[VideoFrame]:
    """vPDQ frame hashes of a video file. Raises MediaError when the video cannot be read. With
    ``bars`` (``match.video_bars``), a video with letterbox or pillarbox bars has each frame hashed
    whole and cropped to the picture inside them (``cropped``), as :func:`hash_video` hashes an
    upload (:func:`csadetect.media.vpdq_worker.cropped_frame_hashes`); ``downsample`` and
    ``threads`` only apply to vpdq's path (a video without bars, or ``bars`` off)."""
    import vpdq  # imported lazily: it links FFmpeg

    if not os.path.exists(path):
        raise MediaError("video file not found")
    if bars:
        cropped = _cropped_file(path, seconds_per_hash)
        if cropped is not None:
            return cropped
    with captured_fd2() as captured:
        try:
            features = vpdq.computeHash(
                input_video_filename=str(path),
                seconds_per_hash=seconds_per_hash,
                downsample_width=downsample,
                downsample_height=downsample,
                thread_count=threads,
            )
        except Exception as exc:  # vpdq raises plain exceptions for unreadable files
            features, failed = None, exc
        else:
            failed = None
    said = [line.strip() for line in "".join(captured).splitlines() if line.strip()]
    if failed is not None:  # vpdq's C++ line ("... Cannot open video") is the reason, in the one error line
        why = said[-1].rsplit(": ", 1)[-1][:120] if said else type(failed).__name__
        raise MediaError(f"unreadable video ({why})") from failed
    for line in said:  # anything else written meanwhile (another thread's log) is passed on
        print(line, file=sys.stderr)
    if not features:
        raise MediaError("unreadable video: no frames decoded")
    return [
        VideoFrame(
            frame=int(f.frame_number),
            quality=int(f.quality),
            pdq=bytes.fromhex(f.hex),
            timestamp=float(f.timestamp),
        )
        for f in features
    ]


def _cropped_file(path: str, seconds_per_hash: float) -> Optional[list[VideoFrame]]:
    """The frames of a video file with bars, cropped; None when it has none or that path cannot
    be used (no FFmpeg CLI, a stream it cannot read: vpdq then hashes it, and names the problem)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        frames = vpdq_worker.cropped_frame_hashes(fd, seconds_per_hash)
    except Exception:  # vpdq_worker.Unusable, or FFmpeg did what was not foreseen
        return None
    finally:
        os.close(fd)
    if frames is None:
        return None
    return [VideoFrame.from_worker(*f) for f in frames]


@dataclasses.dataclass(frozen=True)
class VideoLimits:
    """What one uploaded video may cost (``limits.*`` in the settings). Everything but the memory
    limit is checked from the container's metadata before a frame is decoded."""

    max_seconds: float = 600.0
    max_pixels: int = 8_294_400  # width * height of a frame (3840x2160)
    max_decoded_frames: int = 36_000  # frames in the container (600 s at 60 fps)
    max_hashed_frames: int = 3_600  # vPDQ frames (one per seconds_per_hash)
    budget_seconds: float = 300.0  # wall clock for probe + decode
    max_memory_bytes: int = 1 << 30  # RLIMIT_DATA of the decoder process

    @classmethod
    def from_settings(cls, limits) -> "VideoLimits":
        """From a :class:`csadetect.config.settings.Limits`."""
        return cls(
            max_seconds=limits.max_video_seconds,
            max_pixels=limits.max_video_pixels,
            max_decoded_frames=limits.max_video_decoded_frames,
            max_hashed_frames=limits.max_video_frames,
            budget_seconds=limits.video_budget_seconds,
            max_memory_bytes=limits.max_video_memory_bytes,
        )


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """A video's first video stream, as its container describes it (``None``: not stated)."""

    width: int
    height: int
    seconds: Optional[float]
    frames: Optional[int]  # stated frame count, or duration * average frame rate


PROBE_SECONDS = 10.0  # ffprobe reads headers only; this is its share of the budget at most


def _anonymous_file(data: bytes) -> int:
    """A readable descriptor holding ``data`` that has no name on any disk: a memfd (Linux), or
    else a temp file unlinked straight after it is created. Either vanishes with its last
    descriptor, so the plaintext does not outlive the process even when it is killed."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("csad-video", os.MFD_CLOEXEC)
    else:  # pragma: no cover - non-Linux
        fd, name = tempfile.mkstemp(prefix="csad-")
        os.unlink(name)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _number(value) -> Optional[float]:
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            return float(num) / float(den) if float(den) else None
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def probe_video(fd: int, limits: VideoLimits, timeout: float = PROBE_SECONDS) -> VideoInfo:
    """The container's metadata of the video in descriptor ``fd``, read by ``ffprobe`` (headers
    only: its decoders refuse frames above ``limits.max_pixels``, so a frame too large to decode is
    never decoded here either). Raises MediaError when ffprobe is missing, slow or says nothing."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise MediaError("video probe unavailable: ffprobe is not installed")
    cmd = [
        ffprobe, "-v", "error", "-max_pixels", str(limits.max_pixels), "-select_streams", "v:0",
        "-print_format", "json",
        "-show_entries", "stream=width,height,nb_frames,duration,avg_frame_rate:format=duration",
        f"/proc/self/fd/{fd}",
    ]
    try:
        done = subprocess.run(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=max(timeout, 0.1), check=False)
    except subprocess.TimeoutExpired:
        raise MediaError("video probe took longer than its time limit") from None
    try:
        info = json.loads(done.stdout or b"{}")
    except ValueError:
        info = {}
    streams = info.get("streams") or []
    if done.returncode != 0 or not streams:
        raise MediaError("unreadable video: no video stream in the container")
    stream = streams[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:  # ffprobe's decoder refused a frame above max_pixels, or none
        raise MediaError(f"video frame size unknown or above the pixel limit {limits.max_pixels}")
    seconds = _number(stream.get("duration")) or _number((info.get("format") or {}).get("duration"))
    frames = _number(stream.get("nb_frames"))
    rate = _number(stream.get("avg_frame_rate"))
    if frames is None and seconds is not None and rate:
        frames = seconds * rate
    return VideoInfo(width, height, seconds, None if frames is None else int(frames))


def check_video(info: VideoInfo, limits: VideoLimits, seconds_per_hash: float) -> None:
    """Raise MediaError naming the rule when metadata puts the video over a limit. A duration or
    frame count the container does not state is not refused here: the budget and the decoder's
    memory limit still bound the decode."""
    if info.width * info.height > limits.max_pixels:
        raise MediaError(f"video frame {info.width}x{info.height} px exceeds the pixel limit {limits.max_pixels}")
    if info.seconds is not None and info.seconds > limits.max_seconds:
        raise MediaError(f"video longer than {limits.max_seconds:g} s")
    if info.frames is not None and info.frames > limits.max_decoded_frames:
        raise MediaError(f"video has more than {limits.max_decoded_frames} frames")
    if seconds_per_hash > 0 and info.seconds is not None:
        hashed = int(info.seconds / seconds_per_hash) + 1
    else:
        hashed = info.frames
    if hashed is not None and hashed > limits.max_hashed_frames:
        raise MediaError(f"video would have more than {limits.max_hashed_frames} hashed frames")


def _decode(fd: int, seconds_per_hash: float, limits: VideoLimits, timeout: float, decode: str = "auto",
            bars: bool = True, overlays: bool = False, framed: bool = False) -> list[VideoFrame]:
    """vPDQ in a child process (:mod:`csadetect.media.vpdq_worker`, frames chosen by its mode
    ``decode``, cropped to the picture inside letterbox or pillarbox bars with ``bars``, hashed once
    more with static overlays painted out with ``overlays``, and inside each frame's own bars with
    ``framed``), killed after ``timeout`` s."""
    if decode not in vpdq_worker.MODES:
        raise ValueError(f"video decode mode must be one of {', '.join(vpdq_worker.MODES)}, not {decode!r}")
    cmd = [sys.executable, "-m", "csadetect.media.vpdq_worker", str(fd), repr(float(seconds_per_hash)),
           str(limits.max_memory_bytes), str(os.getpid()), decode, "crop" if bars else "whole",
           "clean" if overlays else "keep", "framed" if framed else "whole"]
    try:
        done = subprocess.run(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=max(timeout, 0.1), check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped the child
        raise MediaError(f"video decoding exceeded the budget of {limits.budget_seconds:g} s") from None
    if done.returncode == vpdq_worker.EXIT_MEMORY or done.returncode in (-signal.SIGKILL, -signal.SIGSEGV,
                                                                          -signal.SIGABRT):
        raise MediaError(f"video decoding exceeded the memory limit of {limits.max_memory_bytes} bytes")
    if done.returncode != 0:
        raise MediaError("unreadable video (decoder failed)")
    frames = []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        try:
            num, quality, hexhash, ts, *view = line.split()
            if len(view) > 1:
                raise ValueError(line)
            frames.append(VideoFrame.from_worker(int(num), int(quality), hexhash, float(ts), view[0] if view else ""))
        except ValueError:
            raise MediaError("unreadable video (decoder output)") from None
    if not frames:
        raise MediaError("unreadable video: no frames decoded")
    return frames


def hash_video(data: bytes, seconds_per_hash: float = 1.0, max_frames: int = 0, suffix: str = ".mp4",
               digests: Sequence[str] = DIGESTS, limits: Optional[VideoLimits] = None,
               decode: str = "auto", bars: bool = True, overlays: bool = True, framed: bool = False) -> VideoHashes:
    """Hash video bytes: vPDQ frames and the ``digests`` of the bytes, within ``limits``.

    The bytes go to an anonymous file (:func:`_anonymous_file`: never a name on disk); ``ffprobe``
    reads its metadata, which must be within the pixel, duration and frame limits, and then a
    child process decodes it under a data-segment limit and is killed when the wall-clock budget
    runs out. Every refusal is a MediaError naming the rule. ``max_frames`` (when given) overrides
    ``limits.max_hashed_frames``; ``suffix`` is unused (FFmpeg probes the format from the bytes).
    ``decode`` (``match.video_decode``): ``auto`` decodes only the key frames when they are dense
    enough to stand in for the samples, ``all`` every frame (:mod:`csadetect.media.vpdq_worker`).
    ``bars`` (``match.video_bars``): frames of a video with letterbox or pillarbox bars are hashed
    whole and cropped to the picture inside them (:mod:`csadetect.media.letterbox`), as
    :func:`hash_video_file` hashes an indicator's video. ``overlays`` (``match.video_overlays``): a
    video whose key frames show a static overlay (a logo box over the picture) has each of them
    hashed once more with it painted out (:mod:`csadetect.media.overlay`; key-frame decoding only;
    ``cleaned`` frames, which an indicator never keeps). ``framed`` (``match.video_frames_pdq``):
    each hashed frame with bars of its own (a still picture's, found in that frame alone) is hashed
    once more inside them (``framed`` frames: looked up among known pictures' PDQ rows only)."""
    del suffix
    limits = limits or VideoLimits()
    if max_frames:
        limits = dataclasses.replace(limits, max_hashed_frames=max_frames)
    deadline = time.monotonic() + limits.budget_seconds
    hex_digests = crypto_hashes(data, digests)
    fd = _anonymous_file(data)
    try:
        try:
            info = probe_video(fd, limits, timeout=min(PROBE_SECONDS, limits.budget_seconds))
        except MediaError:
            if time.monotonic() >= deadline:  # the budget, not the probe's own limit, ran out
                raise MediaError(f"video decoding exceeded the budget of {limits.budget_seconds:g} s") from None
            raise
        check_video(info, limits, seconds_per_hash)
        frames = _decode(fd, seconds_per_hash, limits, deadline - time.monotonic(), decode, bars, overlays, framed)
    finally:
        os.close(fd)
    hashed = len({f.frame for f in frames})  # frames, not hashes: a frame's cropped, cleaned, framed views are its
    if hashed > limits.max_hashed_frames:
        raise MediaError(f"video has too many hashed frames: {hashed} > limit {limits.max_hashed_frames}")
    return VideoHashes(digests=hex_digests, frames=tuple(frames))


def hash_video_upload(data: bytes, match, limits, digests: Sequence[str] = DIGESTS,
                      suffix: str = ".mp4") -> VideoHashes:
    """An uploaded video's hashes as the pipeline's hash stage makes them: :func:`hash_video` under
    the ``match`` and ``limits`` settings (``MatchSettings``, ``Limits``: sampling, decoder, bars,
    static overlays, framed pictures, the video limits). ``csadetect match`` hashes a video file so too."""
    return hash_video(data, seconds_per_hash=match.video_seconds_per_hash, max_frames=limits.max_video_frames,
                      suffix=suffix, digests=digests, limits=VideoLimits.from_settings(limits),
                      decode=match.video_decode, bars=match.video_bars, overlays=match.video_overlays,
                      framed=match.video_frames_pdq)
