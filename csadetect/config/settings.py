"""Typed, validated configuration.

Defaults live in ``csadetect/config/default.yaml`` (shipped as package data). A user file is merged on top
and the whole is validated *before* a pipeline graph is built, so a typo fails at start-up with a
one-line message instead of deep inside a worker.
"""
from __future__ import annotations

import copy
import os
from datetime import datetime, timezone
from pathlib import Path
import typing
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from csadetect.core import fs
from csadetect.core.timeutil import utc_now

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class ConfigError(ValueError):
    """Invalid configuration; the message is one line meant for the operator."""


def _bool_for_number(value: Any, annotation: Any) -> bool:
    """Whether ``value`` holds a YAML ``true``/``false`` where ``annotation`` asks for a number (an int or
    a float, maybe Optional; or a tuple, list or dict of them, nested) and not for a bool: pydantic's lax mode would
    take ``true`` as 1, so ``match.embedding_query_turn_gate: true`` would silently mean a gate of 1."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _bool_for_number(value, args[0])
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        inner = [a for a in args if a is not Ellipsis]
        return any(_bool_for_number(v, inner[min(i, len(inner) - 1)]) for i, v in enumerate(value)) if inner else False
    if origin is dict and isinstance(value, dict):
        return len(args) == 2 and any(_bool_for_number(v, args[1]) for v in value.values())
    if not isinstance(value, bool):
        # a container under Optional or another union: the member of its own kind
        return isinstance(value, (list, tuple, dict)) and any(
            typing.get_origin(a) in (tuple, list, dict) and _bool_for_number(value, a) for a in args)
    kinds = set(args) if args and origin is not Literal else {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info) -> Any:
        """A number field given ``true`` or ``false`` fails with one line instead of becoming 1 or 0."""
        field = cls.model_fields.get(info.field_name)
        if field is not None and _bool_for_number(value, field.annotation):
            off = type(None) in typing.get_args(field.annotation)
            raise ValueError("expected a number, not true/false" + ("; null turns it off" if off else ""))
        return value


class Limits(_Strict):
    max_event_bytes: int = Field(16_000_000, gt=0, description="max size of one Pub/Sub message body")
    max_content_bytes: int = Field(12_000_000, gt=0, description="max decoded content size")
    max_pixels: int = Field(50_000_000, gt=0, description="decompression-bomb guard")
    max_video_frames: int = Field(3_600, gt=0, description="max hashed vPDQ frames per video (estimated from "
                                  "the container's metadata before decoding, counted again after)")
    max_video_seconds: float = Field(600, gt=0, description="max video duration, from the container's metadata")
    max_video_pixels: int = Field(8_294_400, gt=0, description="max width*height of a video frame (3840x2160)")
    max_video_decoded_frames: int = Field(36_000, gt=0, description="max frames a video may hold (metadata's "
                                          "frame count, or duration * frame rate): what decoding costs")
    video_budget_seconds: float = Field(300, gt=0, description="wall-clock budget for probing and decoding one "
                                        "video; the decoder process is killed when it runs out")
    max_video_memory_bytes: int = Field(1 << 30, ge=64 << 20, description="data-segment limit of the video "
                                        "decoder process (RLIMIT_DATA): a backstop for what metadata misstates")
    max_text_chars: int = Field(10_000, gt=0)
    allowed_image_mimes: tuple[str, ...] = (
        "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
    )
    allowed_video_mimes: tuple[str, ...] = (
        "video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo", "video/mpeg",
    )


_SPECIAL_DIRS = ("/proc", "/sys", "/dev")


class ContentSettings(_Strict):
    """Where ``content_uri`` may point (issue 12 item 3). An event's URI is read only when it starts
    with one of ``allowed_uri_prefixes``; by default none is, so no URI is read at all."""
    allowed_uri_prefixes: tuple[str, ...] = Field((), description="URI prefixes content_uri may start with, "
                                                  "each ending in '/' (e.g. gs://provider-uploads/); empty: none")
    read_timeout_seconds: float = Field(30, gt=0, description="wall-clock limit for reading one content_uri")

    @field_validator("allowed_uri_prefixes")
    @classmethod
    def _safe_prefixes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in v:
            if not prefix.endswith("/"):
                raise ValueError("each allowed_uri_prefixes entry must end with '/' (a folder, not a name stem)")
            if fs.is_url(prefix):
                if prefix.lower().startswith("file://"):
                    raise ValueError("give a local allowed_uri_prefixes entry as an absolute directory, not file://")
                if not prefix.split("://", 1)[1].strip("/"):
                    raise ValueError("an allowed_uri_prefixes URL must name a bucket or host, not a whole scheme")
                continue
            if not os.path.isabs(prefix):
                raise ValueError("a local allowed_uri_prefixes entry must be an absolute directory")
            real = os.path.realpath(prefix)
            if real == "/" or any(real == d or real.startswith(d + "/") for d in _SPECIAL_DIRS):
                raise ValueError("allowed_uri_prefixes may not allow '/', /proc, /sys or /dev")
        return v


class MatchThresholds(_Strict):
    """Per-source and per-category thresholds (docs/false-positives.md): ``{name: {kind: max
    distance}}``, the distance in the kind's unit (Hamming bits for pdq, ``1 - share`` of frames for
    vpdq, ``1 - similarity`` for embeddings). A match farther than any threshold that applies to it
    (its source's, its category's) is dropped. They only tighten the global thresholds; the kinds
    are checked against the signal registry when the pipeline starts
    (:func:`csadetect.indicators.controls.Thresholds.from_settings`)."""

    by_source: dict[str, dict[str, float]] = Field(default_factory=dict,
                                                   description="indicator source -> kind -> max distance")
    by_category: dict[str, dict[str, float]] = Field(default_factory=dict, description="category -> kind -> max distance")

    @field_validator("by_source", "by_category")
    @classmethod
    def _non_negative(cls, v: dict) -> dict:
        for name, limits in v.items():
            if not name.strip():
                raise ValueError("a source or category name is empty")
            for kind, limit in limits.items():
                if limit < 0:
                    raise ValueError(f"{name}.{kind}: a threshold is a distance, >= 0 (got {limit})")
        return v


class MatchSettings(_Strict):
    pdq_threshold: int = Field(31, ge=0, le=256, description="max Hamming distance counted as a match (inclusive)")
    quality_gate: int = Field(50, ge=0, le=100, description="PDQ quality below which a hash is not matched")
    video_frame_share: float = Field(0.8, gt=0, le=1, description="share of the query video's frames (quality >= "
                                     "quality_gate) that must be within pdq_threshold of a frame of the indicator")
    video_indicator_share: float = Field(
        0.01, gt=0, le=1, description="share of the indicator video's frames that must be within pdq_threshold of a "
        "frame of the query (Meta's vPDQ compared_match_percent). A floor, not Meta's 0.8: it depends on how densely "
        "each side was sampled (key-frame queries against every-frame indicators match 2-12% of the indicator's "
        "frames on Meta's test videos) and an excerpt of a long video matches few of its frames (benchmarks/video.md)"
    )
    video_bars: bool = Field(True, description="a video with letterbox or pillarbox bars (or a blurred fill) also has each frame hashed "
                             "cropped to the picture inside them (uploads: whole and cropped; indicators from media: "
                             "cropped); false: whole frames only, as before (benchmarks/video.md has the cost)")
    video_overlays: bool = Field(True, description="uploads: a video whose key frames show a static overlay over the "
                                 "picture (a logo box that stays put while the picture moves) also has each key frame "
                                 "hashed with it painted out (csadetect.media.overlay; key-frame decoding only); "
                                 "false: as before (benchmarks/video.md has the recall and the cost)")
    video_frames_pdq: bool = Field(True, description="uploads: a video's hashed frames (whole, inside the video's bars, "
                                   "and inside each frame's own bars) are also looked up among the PDQ rows of known "
                                   "pictures, so a known picture shown in a video (a slideshow) is found; false: "
                                   "videos match video indicators and digests only (benchmarks/slideshow.md)")
    image_video_frames: bool = Field(True, description="uploads: an image is also looked up among the frames of known "
                                     "videos (vPDQ rows), so a frame grab or thumbnail of a known video is found; such "
                                     "a match goes to review, never confirmed on its own (a known video's frame may be "
                                     "a title card or a logo); false: images match picture indicators only "
                                     "(benchmarks/frame-grabs.md)")
    image_frames: int = Field(32, ge=0, le=64, description="uploads: an animated image (GIF, WebP, PNG) or multi-page "
                              "TIFF also has up to this many of its distinct later frames hashed and embedded as "
                              "views (csadetect.media.frames); 0 = the first frame only")
    video_seconds_per_hash: float = Field(1.0, ge=0, description="uploads: vPDQ sampling interval (0 = every frame)")
    video_indicator_seconds_per_hash: float = Field(
        0.0, ge=0, description="indicators from media: vPDQ sampling interval; 0 = every frame (as Meta's published "
        "hashes), so an upload's sampled frames find theirs wherever they fall (benchmarks/video.md: a copy cut 0.25 "
        "or 0.5 s later, or an excerpt, matches no indicator sampled at 1 s)")
    video_decode: Literal["auto", "all"] = Field(
        "auto", description="uploads: auto = decode only the key frames when none is more than 2 x video_seconds_per_hash "
        "from the next (3-5x faster, the same hashes), else every frame; all = always every frame (vpdq)"
    )
    pdq_index: Literal["auto", "multihash", "flat"] = Field(
        "auto", description="multihash: exact multi-index hashing (fast, ~96 B/indicator); flat: FAISS IndexBinaryFlat "
        "(32 B/indicator, linear scan); auto: multihash for thresholds <= 31"
    )
    faiss_threads: int = Field(
        1, ge=0, description="OpenMP threads per worker process for FAISS (0 = FAISS default); "
        "small per-item queries are fastest single-threaded, Beam parallelises across items"
    )
    preprocess: bool = Field(True, description="also hash border/letterbox-trimmed views of each image")
    fill_view: bool = Field(
        True, description="with preprocess: also look for a picture centred in front of a blurred fill (the 'fill' "
        "view, csadetect.media.preprocess.fill_box; ~0.1-0.8 ms per image, + one PDQ and one vector when found)"
    )
    tilt_view: bool = Field(
        True, description="with preprocess: also bring a picture turned by 1-30 degrees on a one-colour canvas back upright "
        "(the 'tilt' view, csadetect.media.view_tilt; a corner test per image, ~0.7 ms more when the corners are one "
        "colour, ~9 ms for a turned picture, + one PDQ and one vector when found)"
    )
    value_view: bool = Field(
        True, description="also hash each picture's value channel (the largest of red, green and blue at each "
        "pixel) with PDQ, which a hue turn (HSV or HSL) or a swap of colour channels leaves as it is "
        "(csadetect.media.view_value): uploads one more PDQ hash per picture hashed, the image and each view and "
        "sub-image (~1 ms each); indicators from-media one more pdq row "
        "per picture (-value); false: neither"
    )
    sub_images: bool = Field(
        True, description="also hash and embed straight-edged sub-images (collage cells, picture-in-picture, "
        "csadetect.media.regions; ~2-3 ms per image, + one PDQ and one vector per sub-image found)"
    )
    embedding_region_rows: bool = Field(
        True, description="indicators from-media: also store embedding rows for corner and centre crops "
        "and strips along each side (csadetect.signals.embedding.EMBEDDING_REGIONS: 25 rows; + 512 B per row per "
        "indicator)"
    )
    embedding_box_rows: bool = Field(
        True, description="indicators from-media: also store embedding rows for corner crops of another aspect, "
        "70% of the width and 86% of the height or 86% and 70% (csadetect.signals.embedding.EMBEDDING_BOXES: 8 rows; "
        "+ 512 B per row per indicator), so a copy cut at a corner to another aspect matches"
    )
    embedding_turn_rows: bool = Field(
        True, description="indicators from-media: also store embedding rows for the picture turned by 4, 7 and 10 "
        "degrees either way and cut back to an upright rectangle (csadetect.signals.embedding.EMBEDDING_TURNS: 6 rows; "
        "+ 512 B per row per indicator), so a straightened copy matches"
    )
    embedding_query_regions: bool = Field(
        True, description="also embed crops of each image at its corners and centre, keeping the shares of its "
        "area in embedding_query_region_shares (csadetect.signals.embedding.query_regions), so a copy cropped "
        "at a corner or the centre to any area from 60% meets a region row; cut from the mirrored image when its "
        "mirror lies nearer some embedding row (a mirrored copy; with embedding.flip); +5 embedding inputs per "
        "share and image (~0.7 ms CPU each: 60 inputs, ~46 ms per 3 MP image with the default shares)"
    )
    embedding_query_region_shares: tuple[float, ...] = Field(
        (0.60, 0.78, 0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98), min_length=1,
        description="the query-side region views' shares of the image's area, whole percents from 0.50 to 0.99. "
        "The default's steps of 2% from 0.80 keep every area from 60% within the ~1.5% the region rows "
        "tolerate; 0.60 and 0.78 cut an uncropped copy exactly like the region rows, so a caption, sticker or "
        "watermark outside one of them leaves it intact; fewer shares cost less and leave gaps "
        "(benchmarks/robustness.md; [0.80] alone: 75%-area crops only)"
    )
    embedding_query_grid_shares: tuple[float, ...] = Field(
        (),
        description="with embedding_query_regions: the views at these of embedding_query_region_shares (each must be "
        "one of them) are also cut at every point of a grid over the image (places at most 2.7% of its side apart: "
        "5 x 5 at 0.80, 4 x 4 at 0.86), not only at its corners and centre, so a copy cropped at a random place to "
        "~65-80% of the area holds a view cut within ~1.4% like the original's centre region row "
        "(csadetect.signals.embedding.query_grid). [] (default): none; [0.80, 0.86]: +32 embedding inputs per image "
        "(~0.7 ms CPU each) for random-place 75%-area crops 52% -> 62%, but stereo false pairs 1 -> 3 of 7 on the "
        "held-out split (benchmarks/random-place.md)"
    )
    embedding_query_strip_shares: tuple[float, ...] = Field(
        (0.60, 0.70, 0.80, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98),
        description="with embedding_query_regions: also cut each side of the image to keep these shares of its "
        "height (top, bottom) or width (left, right), whole percents from 0.50 to 0.99, so a copy with one side "
        "cut off (60-100% of it kept: the shares from 0.88) meets one of the strip rows (60/70/80/90%, "
        "csadetect.signals.embedding.EMBEDDING_STRIPS; a strip view matches only within a quarter of the threshold's "
        "distance), and 0.60, 0.70 and 0.80 cut an uncropped copy exactly like the strip rows, so a sticker or "
        "caption outside one of them leaves it intact; +4 embedding inputs per share and image (~0.9 ms CPU each: "
        "36 inputs with the default shares, ~+32 ms per 3 MP image); [] turns the strips off"
    )
    embedding_query_turns: bool = Field(
        True, description="with embedding_query_regions: also embed the image and its mirror turned a quarter, a "
        "half and three quarters (6 inputs, ~2 ms CPU: with the image and its mirror, PDQ's eight dihedral ways) and "
        "also cut the region views from the turn whose own vector lies nearer some embedding row than the image's "
        "and its mirror's by more than the threshold's distance (and within embedding_query_turn_gate of it), so a "
        "copy turned by 90 degrees or transposed and cropped meets the region rows upright (+96 inputs for such an "
        "upload); the turned vectors only choose the way, they are not looked up"
    )
    embedding_query_turn_gate: Optional[float] = Field(
        15.0, ge=1.0, description="with embedding_query_turns: a turn adds a way only when its own vector also lies "
        "within this many times the threshold's distance (1 - threshold) of some embedding row (15 at 0.9963: "
        "similarity >= 0.9445), so an upload far from every row is not cut again from whichever turn happens to lie "
        "least far (+96 inputs, ~30 ms); null: no such floor (the release before)"
    )
    embedding_query_region_gate: Optional[float] = Field(
        None, ge=1.0, description="null (default): embed the query-side region views of every image. A number: only for "
        "an image that nothing matched and one of whose own vectors lies within this many times the threshold's "
        "distance (1 - threshold) of some embedding row (csadetect.signals.embedding.region_gate_similarity; 30 at "
        "0.9963: similarity >= 0.889). Spares the ~46 ms of the views per 3 MP image far from every row, a share "
        "that shrinks as the index grows (benchmarks/region-gate.md)"
    )
    auto_confirm_distance: int = Field(
        31, ge=0, le=256, description="PDQ matches at or below this distance are confirmed without review"
    )
    embedding_index: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto", description="embedding rows: flat (exact inner product), ivf or hnsw (approximate FAISS indexes, "
        "recall >= 0.99 of exact, benchmarks/embeddings.md); auto: flat below embedding_exact_below rows, else ivf"
    )
    embedding_exact_below: int = Field(
        10_000, ge=0, description="auto: exact search for fewer embedding rows than this, an approximate index above "
        "(exact costs ~0.14 us per row per image: over the embedding model's own 1.6 ms from ~11k rows)"
    )
    embedding_ivf_nprobe: int = Field(8, ge=1, description="IVF lists searched per query (recall against speed)")
    embedding_hnsw_ef_search: int = Field(256, ge=1, description="HNSW candidate list size per query (recall against speed)")
    thresholds: MatchThresholds = Field(
        MatchThresholds(), description="stricter distance thresholds per indicator source "
        "and category (docs/false-positives.md); the strictest that applies wins"
    )

    @field_validator("embedding_query_region_shares", "embedding_query_strip_shares", "embedding_query_grid_shares")
    @classmethod
    def _whole_percents(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for share in v:
            if not 0.5 <= share <= 0.99 or abs(share * 100 - round(share * 100)) > 1e-6:
                raise ValueError(f"{share} is not a whole percent from 0.50 to 0.99")
        if len({round(share * 100) for share in v}) != len(v):
            raise ValueError(f"a share is listed twice in {list(v)}")
        return tuple(sorted(round(share, 2) for share in v))

    @model_validator(mode="after")
    def _grids_among_region_shares(self) -> "MatchSettings":
        missing = sorted(set(self.embedding_query_grid_shares) - set(self.embedding_query_region_shares))
        if missing:
            raise ValueError(f"embedding_query_grid_shares {missing} not among embedding_query_region_shares")
        return self


class AllowListSettings(_Strict):
    """The allow-list ("negative bank", docs/false-positives.md): a second signed snapshot of known
    benign hashes, in the indicator database's format (``csadetect indicators build --out DIR``).
    An item that matches it loses its known matches (the rule: :func:`csadetect.indicators.controls.suppress`)."""

    path: Optional[str] = Field(None, description="allow-list snapshot directory (local path or any Beam filesystem); None = off")
    public_key: Optional[str] = Field(None, description="Ed25519 public key that signs the allow-list snapshots")
    poll_seconds: float = Field(60.0, gt=0, description="how often workers look for a new allow-list version")
    min_version: Optional[int] = Field(None, ge=1, description="refuse an allow-list version below this; None = no minimum")
    pdq_threshold: Optional[int] = Field(
        None, ge=0, le=256, description="max Hamming distance to an allowed PDQ hash; None = match.pdq_threshold"
    )

    @model_validator(mode="after")
    def _key_with_path(self) -> "AllowListSettings":
        if self.path and not self.public_key:
            raise ValueError("allow_list.path needs allow_list.public_key (the allow-list is signed)")
        return self


class FloodGuardSettings(_Strict):
    """The flood guard (docs/false-positives.md): an indicator whose matches exceed ``share`` of the
    items one worker process saw in the last ``window_seconds`` (and number at least
    ``min_matches``) is quarantined: its matches go to human review instead of confirming on their
    own, until a new snapshot version is loaded or ``csadetect quarantine release ID``."""

    enabled: bool = Field(True, description="quarantine indicators that match too large a share of the traffic")
    window_seconds: float = Field(600.0, gt=0, description="the sliding window, per worker process")
    share: float = Field(0.01, gt=0, le=1, description="quarantine when an indicator matches more than this share "
                         "of the items in the window")
    min_matches: int = Field(20, ge=1, description="... and at least this many times (a quiet stream does not trip it)")
    release_dir: Optional[str] = Field(
        "out/flood_guard", description="where `csadetect quarantine release` writes release records that workers poll; "
        "None = quarantine ends only with a new snapshot version"
    )
    poll_seconds: float = Field(30.0, gt=0, description="how often workers look for new release records")


class IndicatorSettings(_Strict):
    path: str = Field(".demo/indicators", description="snapshot directory (local path or any Beam filesystem)")
    public_key: str = Field(".demo/keys/public.pem", description="Ed25519 public key that signs the snapshots")
    poll_seconds: float = Field(30.0, gt=0, description="how often workers look for a new snapshot version")
    min_version: Optional[int] = Field(
        None, ge=1, description="refuse a snapshot version below this (at start-up and on hot swap); None = no minimum"
    )
    cache_dir: Optional[str] = Field(
        None, description="local directory where a snapshot on an object store (gs://) is copied once per machine to "
        "be memory-mapped by every worker process; None = the system's temp directory"
    )


class GroomingSettings(_Strict):
    enabled: bool = Field(True, description="score conversations with a minor participant (Art. 7(7))")
    model: Optional[str] = Field(None, description="model dir/.keras path; None = the shipped reference model")
    threshold: Optional[float] = Field(
        None, ge=0, le=1, description="one threshold for every language; None = the model's tuned one per language"
    )
    threshold_provenance: Optional[dict] = Field(
        None, description="written by `csadetect tune`: dataset, its sha256, target, precision, recall, date, model"
    )
    inactivity_seconds: int = Field(7 * 24 * 3600, gt=0, description="conversation state is cleared after this")
    unsupported_languages: Literal["skip", "score"] = Field(
        "skip", description="a conversation in a language the model does not support: skip = not scored, never "
        "flagged; score = scored with the model's global calibration and threshold, flagged as language_supported "
        "false; both count grooming_unsupported_language_<code>"
    )
    urgent_patterns: tuple[str, ...] = Field(
        ("meeting",), description="risk patterns that mark a grooming report urgent (imminent risk, Art. 13(1)(j))"
    )


class Batching(_Strict):
    """RunInference batching (``beam.BatchElements``): in streaming, a batch is emitted when it is
    full or ``max_batch_duration_secs`` after its first element, whichever comes first."""

    min_batch_size: int = Field(1, ge=1)
    max_batch_size: int = Field(64, ge=1)
    max_batch_duration_secs: Optional[float] = Field(1.0, gt=0, description="streaming only; None = no limit")


class EmbeddingSettings(_Strict):
    enabled: bool = Field(True, description="embed images for near-duplicate lookup and the new-material classifier")
    model: Optional[str] = Field(None, description="model dir (model.keras + metadata.json); None = the reference model")
    threshold: Optional[float] = Field(
        None, ge=-1, le=1, description="cosine similarity counted as a near-duplicate match; None = the model's calibrated one"
    )
    flip: bool = Field(True, description="also embed the mirrored image (PDQ covers mirrors with its dihedral hashes)")
    auto_confirm_similarity: Optional[float] = Field(
        None, ge=-1, le=1, description="embedding matches at or above this confirm without review; None = always review"
    )
    batching: Batching = Batching()


class NewMaterialSettings(_Strict):
    enabled: bool = Field(True, description="score images without a known match with the new-material classifier")
    model: Optional[str] = Field(None, description="classifier dir; None = the reference model (a benign-proxy stand-in)")
    review_threshold: Optional[float] = Field(None, ge=0, le=1, description="None = the model's tuned review threshold")
    report_threshold: Optional[float] = Field(None, ge=0, le=1, description="None = the model's tuned report threshold")
    require_review: bool = Field(
        True, description="classifier hits wait for a reviewer verdict (DESIGN 6); false: >= report_threshold reports at once"
    )
    review_threshold_provenance: Optional[dict] = Field(
        None, description="written by `csadetect tune --config-key new_material.review_threshold`"
    )
    report_threshold_provenance: Optional[dict] = Field(
        None, description="written by `csadetect tune --config-key new_material.report_threshold`"
    )
    batching: Batching = Batching()

    @field_validator("report_threshold")
    @classmethod
    def _order(cls, v, info):
        review = info.data.get("review_threshold")
        if v is not None and review is not None and v < review:
            raise ValueError("report_threshold must be >= review_threshold")
        return v


class SinkSettings(_Strict):
    report_dir: Optional[str] = Field("out/reports", description="Parquet + JSON Lines report files (None = off)")
    report_topic: Optional[str] = Field(None, description="projects/P/topics/T for reports")
    dead_letter_dir: Optional[str] = Field("out/dead_letters", description="JSON Lines dead letters")
    dead_letter_topic: Optional[str] = None
    review_dir: Optional[str] = Field("out/review", description="review store: one Parquet file per hit awaiting review")
    review_topic: Optional[str] = None
    formats: tuple[Literal["parquet", "jsonl"], ...] = ("parquet", "jsonl")


class ProviderSettings(_Strict):
    provider_id: str = "demo-provider"
    content_removed: bool = False
    account_action: str = "none"


DETECTION_TYPES = ("known", "new", "grooming")


class DetectionOrder(_Strict):
    """An Art. 7 detection order: which detectors may run on which service components, and when.
    The pipeline runs a detector on an event only while an order covering both is active
    (``start <= now < end``), checked per event, so an order ends without a restart. ``demo``
    marks the default config's stand-in order, which no run off this machine may use
    (:func:`csadetect.config.profiles.check_demo_orders`)."""

    order_id: str = Field(..., min_length=1)
    authority: str = Field(..., min_length=1, description="the issuing judicial or independent administrative authority")
    detection_types: tuple[Literal["known", "new", "grooming"], ...] = Field(..., min_length=1)
    services: tuple[str, ...] = Field(..., min_length=1, description="service components covered (the event's `service`)")
    start: datetime
    end: datetime
    demo: bool = Field(False, description="the shipped demo order (not a real one): only a local run may use it; "
                       "a Dataflow/Flink run or a profile other than `direct` refuses to start under it")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)

    @field_validator("end")
    @classmethod
    def _after_start(cls, v, info):
        start = info.data.get("start")
        if start is not None and v <= start:
            raise ValueError("end must be after start")
        return v

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def covers(self, detection_type: str, service: str, now: datetime) -> bool:
        return self.active(now) and detection_type in self.detection_types and service in self.services

    def legal_basis(self) -> str:
        return f"detection order {self.order_id} issued by {self.authority} (Art. 7)"


class ReportSettings(_Strict):
    """Keys that protect reports (DESIGN 6/7). Evidence is sealed for ``evidence_key`` (the
    provider's reviewers) as soon as content is hashed, and re-sealed for the EU Centre's
    ``centre_public_key`` only when a hit is reported; each report is signed with ``signing_key``."""

    signing_key: Optional[str] = Field(".demo/provider-keys/private.pem", description="provider Ed25519 private key (PEM)")
    evidence_key: Optional[str] = Field(
        ".demo/provider-keys/evidence_private.pem", description="provider X25519 private key for review evidence (PEM)"
    )
    centre_public_key: Optional[str] = Field(
        ".demo/centre-keys/centre_public.pem", description="EU Centre X25519 public key (PEM) evidence is sealed for"
    )
    include_evidence: bool = Field(True, description="attach the sealed content to reports and review items")


class ReviewSettings(_Strict):
    ttl_seconds: int = Field(14 * 24 * 3600, gt=0, description="pending review items and their evidence are deleted after this")
    verdict_subscription: Optional[str] = Field(None, description="projects/P/subscriptions/S of reviewer verdicts")
    sweep_seconds: float = Field(300.0, gt=0, description="streaming: how often expired review items are swept")


class FeedbackSettings(_Strict):
    subscription: Optional[str] = Field(None, description="projects/P/subscriptions/S of EU Centre verdicts")
    verdict_glob: Optional[str] = Field(None, description="JSON Lines files of EU Centre verdicts (batch)")
    out_dir: Optional[str] = Field("out/feedback", description="precision, alerts and labelled examples")
    precision_floor: float = Field(0.8, ge=0, le=1, description="alert when a detector's precision falls below this")
    min_verdicts: int = Field(10, ge=1, description="verdicts needed before a precision alert can fire")
    notifications_dir: Optional[str] = Field("out/notifications", description="scheduled user notifications (Art. 12(2))")
    notifications_topic: Optional[str] = None
    notify_after_days: int = Field(90, gt=0, description="users are notified this long after a report unless delayed")


class StoreSettings(_Strict):
    stats_dir: Optional[str] = Field("out/stats", description="id-free counters for the transparency report")
    complaints_dir: str = Field("out/complaints", description="users' complaints and their outcomes (Art. 34)")


class RetentionSettings(_Strict):
    days: int = Field(365, gt=0, description="stored reports, evidence and review items are deleted this long after reporting (Art. 22)")
    dead_letter_days: int = Field(30, gt=0, description="dead letters (rejected events: never ids of hits) are deleted this long after rejection")
    holds_file: str = Field("out/holds.jsonl", description="report ids on hold (not deleted)")
    log_dir: str = Field("out/retention", description="what was deleted, by id only")


class ConsoleSettings(_Strict):
    """The EU Centre's review console (``csadetect console``, ``docs/console.md``). The report
    source is ``reports_dir`` or ``subscription`` (the subscription wins when both are set);
    verdicts go to ``feedback_topic`` and/or ``feedback_dir``, requests for missing information to
    ``provider_requests_topic`` and/or ``provider_requests_dir``."""

    reports_dir: Optional[str] = Field("out/reports", description="Parquet/JSON Lines report store read on start and every refresh_seconds")
    subscription: Optional[str] = Field(None, description="projects/P/subscriptions/S of the report topic (pulled in the background)")
    refresh_seconds: float = Field(30.0, gt=0, description="how often the report store is read again")
    host: str = Field("127.0.0.1", min_length=1, description="address to bind; keep loopback unless behind a TLS proxy")
    port: int = Field(8080, ge=0, le=65535)
    centre_key: Optional[str] = Field(None, description="the EU Centre's X25519 private key (PEM) that opens report evidence")
    provider_public_key: Optional[str] = Field(
        None, description="the provider's Ed25519 public key (PEM); reports whose signature does not verify cannot be confirmed"
    )
    feedback_topic: Optional[str] = Field(None, description="projects/P/topics/T the verdicts are published to (Art. 48)")
    feedback_dir: Optional[str] = Field("out/centre/verdicts", description="verdicts as JSON Lines (csadetect feedback --verdict_glob)")
    provider_requests_topic: Optional[str] = Field(None, description="projects/P/topics/T for requests for missing information (Art. 48(5))")
    provider_requests_dir: Optional[str] = Field("out/centre/info_requests", description="requests for missing information as JSON Lines")
    db: str = Field("out/centre/console.sqlite3", min_length=1, description="SQLite file: users, sessions, audit log; the report cache (reports, verdicts, requests, outbox) is this path + '.cache'")
    audit_log: Optional[str] = Field("out/centre/audit.jsonl", description="append-only JSON Lines mirror of the audit table")
    session_idle_seconds: int = Field(900, gt=0, description="a session ends after this long without a request")
    session_max_seconds: int = Field(8 * 3600, gt=0, description="a session ends this long after login, whatever its use")
    reveal_seconds: int = Field(10, ge=1, le=300, description="revealed evidence blurs again after this long")
    break_after_reveals: int = Field(20, ge=1, description="reveals in one session after which a break is suggested")
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (set when served over TLS)")
    login_max_failures: int = Field(5, ge=1, description="failed logins for one user name before back-off starts")
    login_max_failures_per_client: int = Field(
        50, ge=1, description="failed logins from one client address (any names) before back-off starts; high, as a proxy's address is every reviewer's"
    )
    login_backoff_seconds: float = Field(1.0, gt=0, description="first wait once a limit is reached; doubles with every further failure")
    login_lockout_seconds: int = Field(300, gt=0, description="the longest wait between login attempts once a limit is reached")
    login_forget_seconds: int = Field(3600, gt=0, description="failed logins are forgotten after this long without another")
    login_hash_concurrency: int = Field(2, ge=1, le=64, description="password checks (argon2id, 64 MiB each) run at once; others wait")
    max_pixels: int = Field(50_000_000, gt=0, description="largest evidence image the console decodes")
    claim_seconds: int = Field(1800, ge=60, description="a claim on a report expires this long after its holder last opened it")

    @field_validator("login_forget_seconds")
    @classmethod
    def _forget_after_lockout(cls, v, info):
        longest = info.data.get("login_lockout_seconds")
        if longest is not None and v < longest:
            raise ValueError("login_forget_seconds must be >= login_lockout_seconds")
        return v

    @field_validator("session_max_seconds")
    @classmethod
    def _max_after_idle(cls, v, info):
        idle = info.data.get("session_idle_seconds")
        if idle is not None and v < idle:
            raise ValueError("session_max_seconds must be >= session_idle_seconds")
        return v

    def validate_outputs(self) -> "ConsoleSettings":
        """Raise ConfigError unless there is a report source and somewhere for verdicts to go."""
        if not (self.reports_dir or self.subscription):
            raise ConfigError("console: no report source: set console.reports_dir or console.subscription")
        if not (self.feedback_topic or self.feedback_dir):
            raise ConfigError("console: verdicts go nowhere: set console.feedback_topic or console.feedback_dir")
        if not (self.provider_requests_topic or self.provider_requests_dir):
            raise ConfigError("console: requests for missing information go nowhere: set "
                              "console.provider_requests_topic or console.provider_requests_dir")
        return self


class Settings(_Strict):
    limits: Limits = Limits()
    content: ContentSettings = ContentSettings()
    match: MatchSettings = MatchSettings()
    indicators: IndicatorSettings = IndicatorSettings()
    allow_list: AllowListSettings = AllowListSettings()
    flood_guard: FloodGuardSettings = FloodGuardSettings()
    grooming: GroomingSettings = GroomingSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    new_material: NewMaterialSettings = NewMaterialSettings()
    sinks: SinkSettings = SinkSettings()
    provider: ProviderSettings = ProviderSettings()
    orders: tuple[DetectionOrder, ...] = ()
    reports: ReportSettings = ReportSettings()
    review: ReviewSettings = ReviewSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    stores: StoreSettings = StoreSettings()
    retention: RetentionSettings = RetentionSettings()
    console: ConsoleSettings = ConsoleSettings()

    def orders_covering(self, detection_type: str, service: str, now: Optional[datetime] = None) -> list[DetectionOrder]:
        now = now or utc_now()
        return [o for o in self.orders if o.covers(detection_type, service, now)]

    def active_orders(self, now: Optional[datetime] = None) -> list[DetectionOrder]:
        now = now or utc_now()
        return [o for o in self.orders if o.active(now)]

    def demo_orders(self) -> list[DetectionOrder]:
        """The configured orders marked ``demo: true`` (the shipped default's stand-in order)."""
        return [o for o in self.orders if o.demo]

    @field_validator("orders")
    @classmethod
    def _unique_orders(cls, v):
        ids = [o.order_id for o in v]
        if len(ids) != len(set(ids)):
            raise ValueError("order_id values must be unique")
        return v

    @field_validator("sinks")
    @classmethod
    def _some_sink(cls, v: SinkSettings) -> SinkSettings:
        if not (v.report_dir or v.report_topic):
            raise ValueError("no report sink: set sinks.report_dir or sinks.report_topic")
        return v

    @field_validator("new_material")
    @classmethod
    def _needs_embedding(cls, v: NewMaterialSettings, info) -> NewMaterialSettings:
        emb = info.data.get("embedding")
        if v.enabled and emb is not None and not emb.enabled:
            raise ValueError("the new-material classifier needs embedding.enabled: true (it scores the embedding)")
        return v


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_text(path: str | os.PathLike) -> str:
    """A local file, or a file on any Beam filesystem (``gs://...``)."""
    return fs.read_text(os.fspath(path))


def _read_yaml(path: str | os.PathLike) -> dict:
    try:
        data = yaml.safe_load(_read_text(path)) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_settings(path: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> Settings:
    """Defaults, then ``path``, then ``overrides`` (nested dict); validated. Raises ConfigError."""
    data = _read_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}
    if path:
        data = _merge(data, _read_yaml(path))
    if overrides:
        data = _merge(data, overrides)
    data.pop("profile", None)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"invalid config at {where}: {first['msg']}") from None
