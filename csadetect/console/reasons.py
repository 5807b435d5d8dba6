"""The verdict reasons, in one place: every reason code with its label, and which reasons go with
which verdict for each detection type (known material, new material from the classifier,
grooming). The report page offers only the reasons of its report's type (:func:`reasons_for`) and
the verdict route accepts only those (:func:`check_reason`); ``docs/console.md`` lists them.

Only the reason code travels to the provider (``feedback`` reads it); labels are for reviewers.
"""
from __future__ import annotations

from typing import Optional

VERDICTS = ("confirmed", "manifestly_unfounded")
VERDICT_LABELS = {"confirmed": "Confirmed", "manifestly_unfounded": "Manifestly unfounded"}

LABELS: dict[str, str] = {
    "matches_known_indicator": "Matches a known indicator",
    "new_material_confirmed": "New material: confirmed",
    "grooming_confirmed": "Grooming: confirmed",
    "benign_content": "Benign content",
    "wrong_match": "Wrong match (not the indicated material)",
    "insufficient_evidence": "Insufficient evidence",
    "other": "Other (explain in the note)",
}

DETECTION_TYPES = {"known": "Known material", "new": "New material (classifier)", "grooming": "Grooming"}

# detection type -> verdict -> reason codes, in the order the form offers them
BY_TYPE: dict[str, dict[str, tuple[str, ...]]] = {
    "known": {"confirmed": ("matches_known_indicator",),
              "manifestly_unfounded": ("wrong_match", "benign_content", "insufficient_evidence", "other")},
    "new": {"confirmed": ("new_material_confirmed",),
            "manifestly_unfounded": ("benign_content", "insufficient_evidence", "other")},
    "grooming": {"confirmed": ("grooming_confirmed",),
                 "manifestly_unfounded": ("benign_content", "insufficient_evidence", "other")},
}

NEEDS_NOTE = frozenset({"other"})

# every reason for each verdict, whatever the type (labels for the history of older verdicts)
REASONS: dict[str, dict[str, str]] = {
    v: {code: LABELS[code] for code in LABELS if any(code in kinds[v] for kinds in BY_TYPE.values())}
    for v in VERDICTS
}


def reasons_for(detection_type: Optional[str]) -> dict[str, dict[str, str]]:
    """``{verdict: {code: label}}`` a report of ``detection_type`` may be decided with."""
    kinds = BY_TYPE.get(detection_type or "")
    if kinds is None:
        return {v: {} for v in VERDICTS}
    return {v: {code: LABELS[code] for code in kinds[v]} for v in VERDICTS}


def check_reason(detection_type: Optional[str], verdict: str, reason: str) -> Optional[str]:
    """None when ``reason`` goes with ``verdict`` for ``detection_type``, else the one-line refusal."""
    if verdict not in VERDICTS:
        return "choose a verdict: confirmed or manifestly unfounded"
    allowed = reasons_for(detection_type)[verdict]
    if reason not in allowed:
        kind = DETECTION_TYPES.get(detection_type or "", detection_type or "unknown")
        offered = ", ".join(allowed) or "none"
        return (f"reason {reason[:40]!r} is not one for '{VERDICT_LABELS[verdict]}' on a {kind} report "
                f"(choose one of: {offered})")
    return None
