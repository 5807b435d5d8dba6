"""Which of a video's frame hashes are looked up: as video frames (vPDQ) and as pictures (PDQ).

The decoder gives each hashed frame up to four hashes (:class:`csadetect.media.hashing.VideoFrame`):
whole, inside the video's bars (``cropped``), with static overlays painted out (``cleaned``) and
inside the frame's own bars (``framed``). vPDQ (:mod:`csadetect.signals.vpdq`) counts frames, by
the video's box; a lookup among known pictures (:mod:`csadetect.signals.pdq`, ``match.video_frames_pdq``)
takes every hash, since each frame of a slideshow may be a different picture with bars of its own.
"""
from __future__ import annotations


def frame_groups(frames, gate: int) -> list[tuple[bytes, ...]]:
    """A video's frames as the index is queried with them: per frame number, the unique hashes of
    quality >= ``gate`` (the whole frame's, its cropped picture's when the video has bars, and the
    one with static overlays painted out when it has any), frames with none left out, equal frames once.
    A frame's ``framed`` hash (inside its own bars) is not among them: vPDQ keeps the video's box.

    A frame whose cropped picture falls below the gate is left out whole: its quality is the
    picture's, and bars lend the whole frame a contrast (and a PDQ quality) that the picture has
    not, so a dark fade between bars would otherwise count as a frame to find."""
    by_frame: dict[int, list[bytes]] = {}
    flat: set[int] = set()
    for f in frames:
        if f.framed:
            continue
        if f.quality >= gate:
            by_frame.setdefault(f.frame, []).append(f.pdq)
        elif f.cropped:
            flat.add(f.frame)
    return list(dict.fromkeys(tuple(dict.fromkeys(hs)) for n, hs in by_frame.items() if n not in flat))


def picture_hashes(frames, gate: int) -> list[bytes]:
    """The unique hashes of a video's frames to look up among known pictures' PDQ rows: those of
    :func:`frame_groups` (the flat-picture rule included) and each frame's ``framed`` hash of
    quality >= ``gate``: the groups' hashes first, then the framed ones."""
    hashes = [h for group in frame_groups(frames, gate) for h in group]
    framed = [f.pdq for f in frames if f.framed and f.quality >= gate]
    return list(dict.fromkeys(hashes + framed))
