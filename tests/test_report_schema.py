"""The report schema: the checked-in JSON Schema equals the one generated from the pyarrow schema,
docs/report.md documents every field, and reports the pipeline writes validate against both."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pytest

from csadetect.reports.schema import REPORT_SCHEMA, json_schema, to_table

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "csadetect" / "reports" / "schemas" / "report.schema.json"


def test_checked_in_schema_matches_the_pyarrow_schema():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "regenerate: python -c \"import json; from csadetect.reports.schema import json_schema; "
        "print(json.dumps(json_schema(), indent=2))\" > csadetect/reports/schemas/report.schema.json")
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_docs_name_every_field():
    doc = (REPO / "docs" / "report.md").read_text()
    for field in REPORT_SCHEMA:
        assert f"| `{field.name}` |" in doc, field.name


def _sample() -> dict:
    report = {f.name: None for f in REPORT_SCHEMA}
    report.update(report_id="a" * 32, schema_version="1.2", order_id="O-1", provider_id="p", created_at="2026-11-28T10:00:00Z",
                  detection_type="new", detector="new-material-classifier", review_status="auto_confirmed",
                  content_kind="image", event_id="e", service="s", occurred_at="2026-11-28T10:00:00Z",
                  legal_basis="order", score=0.97, threshold=0.93, indicator_ids=[], categories=[], matches=[],
                  content_removed=False, urgent=False)
    return report


def test_a_report_validates_and_bad_ones_do_not():
    validator = jsonschema.Draft202012Validator(json_schema())
    report = _sample()
    validator.validate(report)
    to_table([report])  # and fits the Parquet schema
    for change in ({"detection_type": "unknown"}, {"score": "high"}, {"extra": 1}, {"report_id": None}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(dict(report, **change))
    missing = dict(report)
    del missing["account"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(missing)


def test_pipeline_reports_validate(tmp_path):
    """Known and new-material reports written by the pipeline (demo data) validate."""
    from csadetect.demo import main as demo_main

    assert demo_main(["--workdir", str(tmp_path / "demo"), "--out", str(tmp_path / "out"),
                      "--config", str(_no_review_config(tmp_path))]) == 0
    validator = jsonschema.Draft202012Validator(json_schema())
    reports = [json.loads(line) for f in (tmp_path / "out" / "reports").rglob("*.jsonl") for line in f.open()]
    assert {r["detection_type"] for r in reports} == {"known", "new", "grooming"}  # grooming confirmed by the demo reviewer
    for r in reports:
        validator.validate(r)
    import pyarrow.parquet as pq

    for f in (tmp_path / "out" / "reports").rglob("*.parquet"):
        assert pq.read_schema(f).remove_metadata().equals(REPORT_SCHEMA)


def _no_review_config(tmp_path) -> Path:
    """New-material hits reported at once, so the demo also writes `new` reports."""
    cfg = tmp_path / "noreview.yaml"
    cfg.write_text("new_material:\n  require_review: false\n  review_threshold: 0.9341\n  report_threshold: 0.9341\n")
    return cfg
