"""The video decoder process: vPDQ of one video, run apart from the worker so it can be bounded.

:func:`csadetect.media.hashing.hash_video` starts ``python -m csadetect.media.vpdq_worker FD
SECONDS_PER_HASH MAX_DATA_BYTES PARENT_PID`` with the video's anonymous file (a memfd, or an
unlinked temp file) as descriptor ``FD``. This process first caps its own data segment
(``RLIMIT_DATA``), so a stream whose frames grow past what its metadata said cannot take the
worker's memory; it is killed from outside when the wall-clock budget runs out, and by the kernel
when its parent dies. It writes one line per hashed frame, ``frame quality hex timestamp``, to
stdout and nothing else; it never sees a file name.

Exit codes: 0 done, 2 bad arguments, 3 out of memory (the data limit), 4 the video is unreadable.
It imports only the standard library and ``vpdq``, to start quickly.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

EXIT_USAGE, EXIT_MEMORY, EXIT_UNREADABLE = 2, 3, 4
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the worker that started it dies (a killed worker leaves no
    decoder running, and so no descriptor keeping the upload's bytes alive)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the budget's kill still applies
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(EXIT_USAGE)


def _near_limit(max_data: int) -> bool:
    """Whether this process came close to its data limit (FFmpeg reports a failed allocation as
    a plain decoding error, so a failure here is put down to memory)."""
    return max_data > 0 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 >= max_data // 2


def main(argv: list[str]) -> int:
    try:
        fd, seconds_per_hash, max_data, parent = int(argv[0]), float(argv[1]), int(argv[2]), int(argv[3])
    except (IndexError, ValueError):
        return EXIT_USAGE
    _die_with_parent(parent)
    if max_data > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (max_data, max_data))
    try:
        import vpdq  # lazy: after the limit is set, so FFmpeg's allocations count against it

        features = vpdq.computeHash(
            input_video_filename=f"/proc/self/fd/{fd}",
            seconds_per_hash=seconds_per_hash,
            downsample_width=0,
            downsample_height=0,
            thread_count=1,
        )
    except MemoryError:
        return EXIT_MEMORY
    except Exception:  # vpdq raises plain exceptions for unreadable input
        return EXIT_MEMORY if _near_limit(max_data) else EXIT_UNREADABLE
    out = sys.stdout
    for f in features or ():
        out.write(f"{int(f.frame_number)} {int(f.quality)} {f.hex} {float(f.timestamp)!r}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
