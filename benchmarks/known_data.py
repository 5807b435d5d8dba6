"""The generated inputs of the known-material benchmark (``benchmarks.bench_known``), all from fixed seeds
and cached under ``benchmarks/.data/``: the test pictures (``image_set``: ``csadetect.media.synth``
pictures and scikit-image photos), random PDQ hashes (``random_db``) and the end-to-end events with their
signed snapshot (``e2e_data``, which ``bench_stages`` builds its workload on). ``bench_known`` re-exports
every name.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.cache import cached
from benchmarks.known_common import DATA_DIR, SEED
from csadetect.core.keys import generate_keypair
from csadetect.events.event import make_event
from csadetect.indicators.rows import Indicator
from csadetect.indicators.snapshot import build_snapshot
from csadetect.media.hashing import hash_image
from csadetect.media.synth import jpeg_bytes, synthetic_image

__all__ = ["_photo", "PHOTOS", "image_set", "random_db", "e2e_data"]


# --------------------------------------------------------------------------- test images


def _photo(name: str, size: tuple[int, int], grain: float, seed: int, mirror: bool) -> Image.Image:
    """A scikit-image sample photo brought to ``size`` (scaled to cover, centre crop) with mild
    sensor-like grain, so its JPEG has a photo-like bit rate."""
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    w, h = img.size
    scale = max(size[0] / w, size[1] / h)
    img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    left, top = (img.size[0] - size[0]) // 2, (img.size[1] - size[1]) // 2
    img = img.crop((left, top, left + size[0], top + size[1]))
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    noise = np.random.default_rng(seed).normal(0, grain, (size[1], size[0], 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")


def image_set(n: int, size: tuple[int, int], quality: int = 90) -> list[bytes]:
    """``n`` JPEGs of ``size``: half csadetect.media.synth pictures, half scikit-image photos (cached)."""

    folder = DATA_DIR / f"images-{size[0]}x{size[1]}-q{quality}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"{i:04d}.jpg"
        if not path.exists():
            if i % 2 == 0:
                img = synthetic_image(SEED + i, size)
            else:
                k = i // 2
                img = _photo(PHOTOS[k % len(PHOTOS)], size, 2.0, SEED + i, mirror=bool((k // len(PHOTOS)) % 2))
            path.write_bytes(jpeg_bytes(img, quality))
        out.append(path.read_bytes())
    return out


# --------------------------------------------------------------------------- random hashes


def random_db(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


# --------------------------------------------------------------------------- end to end


def e2e_data(work: Path, n_events: int, size: tuple[int, int], n_random: int, shards: int = 4) -> dict:
    """Events JSON Lines (base64 JPEGs, ``shards`` files) and a signed snapshot of random PDQ
    indicators plus the pictures of every 10th event. Known events are crops of their own
    pictures, so exactly those events can match. Cached in ``work`` (same parameters)."""

    params = {"n": n_events, "size": list(size), "random": n_random, "shards": shards, "seed": SEED, "v": 2}

    def build(work: Path) -> dict:
        rng = np.random.default_rng(SEED + 7)
        big = (size[0] * 3 // 2, size[1] * 3 // 2)
        known_canvases = [synthetic_image(SEED + 100, big), _photo(PHOTOS[0], big, 2.0, SEED + 101, False)]
        other_canvases = [synthetic_image(SEED + 110 + i, big) for i in range(2)]
        other_canvases += [_photo(PHOTOS[1 + i], big, 2.0, SEED + 120 + i, bool(i % 2)) for i in range(4)]
        files = [open(work / f"events-{k}.jsonl", "w") for k in range(shards)]
        rows, total_bytes, known = [], 0, 0
        for i in range(n_events):
            is_known = i % 10 == 0
            canvases = known_canvases if is_known else other_canvases
            canvas = canvases[i % len(canvases)]
            x, y = int(rng.integers(0, big[0] - size[0])), int(rng.integers(0, big[1] - size[1]))
            img = canvas.crop((x, y, x + size[0], y + size[1]))
            if rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            data = jpeg_bytes(img, 90)
            total_bytes += len(data)
            if is_known:
                known += 1
                rows.append(Indicator(f"known-{i:05d}", "pdq", hash_image(data).pdq.hex(), category="benchmark"))
            files[i % shards].write(json.dumps(make_event(f"ev-{i:05d}", data, account=f"acct-{i % 97}")) + "\n")
        for fh in files:
            fh.close()
        codes = random_db(n_random, SEED + 9)
        rows += [Indicator(f"rand-{i:06d}", "pdq", c.tobytes().hex()) for i, c in enumerate(codes)]
        generate_keypair(work / "keys", overwrite=True)
        build_snapshot(rows, str(work / "db"), str(work / "keys" / "private.pem"))
        # the same set-up on 20 events, to measure the fixed cost of a run
        small = work / "small"
        small.mkdir()
        lines = [line for k in range(shards) for line in (work / f"events-{k}.jsonl").read_text().splitlines(True)[:20]]
        (small / "events-0.jsonl").write_text("".join(lines[:20]))
        for name in ("keys", "db"):
            (small / name).symlink_to(work / name)
        data = {"n": n_events, "size": list(size), "known": known, "indicators": len(rows), "random": n_random,
                "mean_kb": total_bytes / n_events / 1024, "shards": shards,
                "jsonl_mb": sum(f.stat().st_size for f in work.glob("events-*.jsonl")) / 2**20}
        return data

    return cached(work, params, build)
