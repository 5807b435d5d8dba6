"""Matching against known material: the ``match`` section (PDQ, vPDQ and embedding lookups, the views
and rows hashed or embedded for them, the indexes, per-source and per-category thresholds) and its
validators, the indicator snapshot (``indicators``), the allow-list (``allow_list``) and the flood
guard (``flood_guard``). :mod:`csadetect.config.settings` re-exports every section.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from csadetect.config.base import _Strict


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
    inverted_view: bool = Field(
        True, description="uploads: also look up the image's PDQ hashes with every bit flipped, which is what a "
        "photo negative of a known picture hashes to, and each preprocessed view's (a negative in a border or bars; "
        "csadetect.media.hashing.INVERTED; 8 more PDQ lookups per image and per view or sub-image, 1.3 views on "
        "average, no image work: ~0.4 ms per 8 at 1M indicator rows, ~1.4 ms at 10M); indicators unchanged"
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
