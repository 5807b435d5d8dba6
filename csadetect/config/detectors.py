"""The model-backed detectors: the grooming classifier (``grooming``), the image embedding model
(``embedding``), the new-material classifier (``new_material``) and the RunInference batching they
share. :mod:`csadetect.config.settings` re-exports every section.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from csadetect.config.base import _Strict


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
    undo_obfuscation: bool = Field(
        True, description="read messages with look-alike letters, invisible characters, digits for letters and "
        "spelled-out words undone (csadetect.models.grooming_text) and sentences of an unsupported language padding "
        "them cut (csadetect.models.language.without_foreign_runs), and a message of more than 14 words read as up "
        "to 4 pieces (csadetect.models.grooming_text.pieces); false = as written"
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

    @field_validator("max_batch_size")
    @classmethod
    def _max_not_below_min(cls, v, info):
        low = info.data.get("min_batch_size")
        if low is not None and v < low:  # Beam's BatchElements would refuse it only while the graph is built
            raise ValueError(f"max_batch_size ({v}) must be >= min_batch_size ({low})")
        return v


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
