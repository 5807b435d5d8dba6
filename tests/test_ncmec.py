"""Reports as NCMEC CyberTipline XML (csadetect.reports.ncmec, ``csadetect reports export-ncmec``): every
export validates against our subset XSD, the XSD rejects what it must, no evidence leaks, and the
CLI refuses tampered reports. All data is benign and synthetic."""
from __future__ import annotations

import argparse
import base64
import os
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xmlschema

from csadetect.reports import crypto
from csadetect.reports import ncmec
from csadetect.cli import reports as reports_cli
from csadetect.events.event import Event
from csadetect.media.hashing import ImageHashes
from csadetect.reports.ncmec import NcmecExportError
from csadetect.reports.schema import REPORT_SCHEMA, hit_report, report_id, to_json_line, to_table
from csadetect.config.settings import ProviderSettings
from csadetect.indicators.index import Match
from csadetect.core.keys import generate_keypair, key_id
from csadetect.reports.hits import HashedItem, MatchedItem

REPO = Path(__file__).resolve().parent.parent
XSD = REPO / "csadetect" / "reports" / "schemas" / "cybertipline_subset.xsd"
REPORTER = {"email": "reports@provider.example", "first_name": "Rita", "last_name": "Reporter"}
PROVIDER = ProviderSettings(provider_id="provider-x", content_removed=True, account_action="suspended")
# benign stand-in for evidence: a few bytes that are not an image of anything
EVIDENCE = b"\x89PNG\r\n\x1a\n benign synthetic bytes for the ncmec test \x00\x01"
MD5, SHA256, PDQ = "0123456789abcdef" * 2, "89abcdef01234567" * 4, bytes(range(32))


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema(str(XSD))


# ------------------------------------------------------------------------------- reports


def _event(event_id: str, context=None, kind: str = "image", mime: str = "image/png") -> Event:
    return Event(event_id=event_id, provider="provider-x", service="photos", kind=kind,
                 occurred_at="2026-11-28T10:00:00Z", account="user-42", mime=mime, context=context)


def _image() -> ImageHashes:
    return ImageHashes(pdq=PDQ, quality=100, dihedral=(), digests={"md5": MD5, "sha256": SHA256}, width=64, height=64)


def known_report(event_id: str = "evt-known", context=None) -> dict:
    """A known-image report from the real code path (``hit_report``), with two matches."""
    matches = (Match("ind-7", "pdq", 6, "test-category"), Match("ind-3", "md5", 0, "test-category"))
    item = HashedItem(event=_event(event_id, context), image=_image())
    return hit_report(MatchedItem(item=item, matches=matches, index_version=3), PROVIDER)


def new_report() -> dict:
    """A new-material report (classifier score, no matches), reviewed and confirmed by a person."""
    item = HashedItem(event=_event("evt-new"), image=_image())
    report = hit_report(MatchedItem(item=item, matches=(), index_version=3, new_score=0.97,
                                    new_model_version="classifier-v2", new_decision="report",
                                    new_threshold=0.93), PROVIDER)
    report.update(review_status="confirmed", reviewed_at="2026-11-28T12:30:00+01:00",
                  order_id="order-1", legal_basis="detection order order-1 issued by a test authority (Art. 7)")
    return report


def grooming_report() -> dict:
    report = {name: None for name in REPORT_SCHEMA.names}
    report.update(
        report_id=report_id("provider-x", "conv-9", "grooming"), schema_version="1.2", provider_id="provider-x",
        created_at="2026-11-28T11:00:00Z", detection_type="grooming", detector="grooming-text",
        detector_version="grooming-v1", score=0.91, threshold=0.8, indicator_ids=[], categories=[], matches=[],
        review_status="confirmed", reviewed_at="2026-11-28T11:30:00Z", content_kind="text", mime="text/plain",
        event_id="msg-77", service="chat", occurred_at="2026-11-28T10:55:00Z", account="user-99",
        content_removed=False, urgent=True, conversation_id="conv-9", risk_patterns=["secrecy", "isolation"],
        legal_basis="detection order order-2 (Art. 7)", order_id="order-2", account_action="suspended",
    )
    return report


def context_report() -> dict:
    return known_report("evt-ctx", context={"ip": "2001:db8::7", "port": "51234", "time_zone": "Europe/Vienna",
                                            "country": "at", "device": "Phone <model \"X\"> & co"})


def minimal_report() -> dict:
    """Only what a report always has: no context, no PDQ, no mime, no order, not removed."""
    report = {name: None for name in REPORT_SCHEMA.names}
    report.update(
        report_id=report_id("provider-x", "evt-min", "known-hash"), schema_version="1.2", provider_id="provider-x",
        created_at="2026-11-28T11:00:00Z", detection_type="known", detector="known-hash",
        review_status="auto_confirmed", content_kind="video", content_sha256=SHA256, event_id="evt-min",
        service="videos", occurred_at="2026-11-28T10:00:00+02:00", account=None,
    )
    return report


ALL = {"known": known_report, "new": new_report, "grooming": grooming_report, "context": context_report,
       "minimal": minimal_report}


def export(report: dict, **kwargs) -> ET.Element:
    return ET.fromstring(ncmec.to_cybertipline_xml(report, REPORTER, **kwargs))


def texts(root: ET.Element, path: str) -> list[str]:
    return [e.text for e in root.findall(path)]


# ------------------------------------------------------------------------------- mapping


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_report_kind_validates_and_sends_nothing_empty(schema, name):
    xml = ncmec.to_cybertipline_xml(ALL[name](), REPORTER)
    schema.validate(xml)  # the test's own validator, not only the module's
    root = ET.fromstring(xml)
    assert root.tag == "cybertiplineSubmission" and root.get("csadetectReportId") == ALL[name]()["report_id"]
    for element in root.iter():
        assert (element.text or "").strip() or len(element), f"empty <{element.tag}>"
    info = root.findtext("report/additionalInfo")
    assert f"Provider report id: {ALL[name]()['report_id']}" in info and "Reporting provider: provider-x" in info
    assert texts(root, "report/reporter/reportingPerson/email") == [REPORTER["email"]]


def test_known_image(schema):
    root = export(known_report())
    assert root.findtext("report/incidentSummary/incidentType") == ncmec.CHILD_PORNOGRAPHY
    assert root.findtext("report/incidentSummary/incidentDateTime") == "2026-11-28T10:00:00Z"
    assert root.find("report/incidentSummary/escalateToHighPriority") is None
    user = root.find("report/personOrUserReported")
    assert user.findtext("espIdentifier") == "user-42" and user.findtext("espService") == "photos"
    assert user.find("ipCaptureEvent") is None  # no ip in this event
    assert "Action taken on the account: suspended" in user.findtext("additionalInfo")
    [details] = root.findall("fileDetails")
    hashes = [(h.get("hashType"), h.text) for h in details.findall("originalFileHash")]
    assert hashes == [("MD5", MD5), ("SHA256", SHA256)]
    pair = details.find("details/nameValuePair")
    assert pair.get("type") == "HASH" and pair.findtext("name") == "PDQ" and pair.findtext("value") == PDQ.hex()
    assert details.findtext("fileViewedByEsp") == "false"  # auto-confirmed: nobody looked
    assert details.findtext("fileRelevance") == "Reported"
    assert details.find("publiclyAvailable") is None  # not stated unless the service is named
    assert details.find("reportId") is None and details.find("fileId") is None  # NCMEC assigns them
    info = details.findtext("additionalInfo")
    assert "known by known-hash (indicators-v3)" in info
    assert "ind-3 (md5, distance 0, category test-category); ind-7 (pdq, distance 6" in info
    assert "Content removed or access disabled: yes" in root.findtext("report/additionalInfo")


def test_new_material_confirmed_is_viewed():
    root = export(new_report(), public_services={"photos": True})
    details = root.find("fileDetails")
    assert details.findtext("fileViewedByEsp") == "true"
    assert details.findtext("publiclyAvailable") == "true"
    info = details.findtext("additionalInfo")
    assert "new by new-material-classifier (classifier-v2), score 0.97 (threshold 0.93)" in info
    assert "Matched indicators" not in info
    assert "confirmed by a human reviewer at the provider at 2026-11-28T11:30:00Z" in info  # +01:00 -> UTC
    report_info = root.findtext("report/additionalInfo")
    assert "Detection order: order-1" in report_info and "Legal basis: detection order order-1" in report_info
    assert export(new_report(), public_services={"photos": False}).findtext("fileDetails/publiclyAvailable") == "false"


def test_grooming_has_no_file_and_carries_conversation_and_patterns():
    root = export(grooming_report())
    assert root.findtext("report/incidentSummary/incidentType") == ncmec.ONLINE_ENTICEMENT
    assert root.findtext("report/incidentSummary/escalateToHighPriority")  # urgent
    assert root.findall("fileDetails") == []
    info = root.findtext("report/additionalInfo")
    assert "Conversation id: conv-9" in info and "Risk patterns found: secrecy, isolation" in info
    assert "score 0.91 (threshold 0.8)" in info
    assert root.findtext("report/personOrUserReported/espService") == "chat"


def test_context_ip_port_zone_country_device():
    root = export(context_report())
    event = root.find("report/personOrUserReported/ipCaptureEvent")
    assert [c.tag for c in event] == ["ipAddress", "eventName", "dateTime", "port"]
    assert event.findtext("ipAddress") == "2001:db8::7" and event.findtext("port") == "51234"
    assert event.findtext("eventName") == "Upload" and event.findtext("dateTime") == "2026-11-28T10:00:00Z"
    assert root.findtext("report/personOrUserReported/estimatedLocation/countryCode") == "AT"
    assert "Europe/Vienna" in root.findtext("report/incidentSummary/incidentDateTimeDescription")
    # escaped on the way out, the same text on the way back in
    assert 'Device, as given: Phone <model "X"> & co' in root.findtext("report/personOrUserReported/additionalInfo")
    raw = ncmec.to_cybertipline_xml(context_report(), REPORTER)
    assert b"&lt;model" in raw and b"&amp; co" in raw


def test_minimal_report_omits_what_it_lacks():
    root = export(minimal_report())
    assert root.findtext("report/incidentSummary/incidentDateTime") == "2026-11-28T08:00:00Z"
    user = root.find("report/personOrUserReported")
    assert [c.tag for c in user] == ["espService"]  # no account, ip, country, device or action
    details = root.find("fileDetails")
    assert [h.get("hashType") for h in details.findall("originalFileHash")] == ["SHA256"]
    assert details.find("details") is None  # no PDQ for a video
    info = root.findtext("report/additionalInfo")
    assert "Content removed" not in info and "Legal basis" not in info
    assert "Content:" in details.findtext("additionalInfo")  # content_kind only, no MIME
    assert "MIME" not in details.findtext("additionalInfo")


def test_reporter_section():
    reporter = dict(REPORTER, contact_email="le-desk@provider.example", legal_url="https://provider.example/le")
    root = ET.fromstring(ncmec.to_cybertipline_xml(known_report(), reporter))
    section = root.find("report/reporter")
    assert [c.tag for c in section] == ["reportingPerson", "contactPerson", "legalURL"]
    assert [c.tag for c in section.find("reportingPerson")] == ["firstName", "lastName", "email"]
    assert section.findtext("contactPerson/email") == "le-desk@provider.example"
    with pytest.raises(NcmecExportError, match="email is required"):
        ncmec.to_cybertipline_xml(known_report())
    with pytest.raises(NcmecExportError, match="not an email address"):
        ncmec.reporter_from({"email": "nobody"})
    with pytest.raises(NcmecExportError, match="unknown key"):
        ncmec.reporter_from({"email": "a@b.example", "phone": "1"})
    with pytest.raises(NcmecExportError, match="legal_url"):
        ncmec.reporter_from({"email": "a@b.example", "legal_url": "javascript:x"})
    assert ncmec.split_name("Jane Q Doe") == {"first_name": "Jane", "last_name": "Q Doe"}


def test_batch_document(schema):
    xml = ncmec.to_cybertipline_batch([f() for f in ALL.values()], REPORTER)
    schema.validate(xml)
    root = ET.fromstring(xml)
    assert root.tag == "cybertiplineExport" and len(root.findall("cybertiplineSubmission")) == len(ALL)
    with pytest.raises(NcmecExportError, match="no reports"):
        ncmec.to_cybertipline_batch([], REPORTER)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"review_status": "pending"}, "only confirmed reports"),
        ({"detection_type": "other"}, "is not known, new or grooming"),
        ({"occurred_at": None}, "occurred_at is missing"),
        ({"occurred_at": "2026-11-28T10:00:00"}, "occurred_at has no time zone"),
        ({"occurred_at": "yesterday"}, "not an RFC 3339 time"),
        ({"ip": "300.1.2.3"}, "ip is not an IPv4 or IPv6 address"),
        ({"ip": "192.0.2.1", "port": 70000}, "port is not a number"),
        ({"content_md5": "xyz"}, "content_md5 is not 32 hex digits"),
        ({"account": "user\x00-1"}, "account has characters XML cannot carry"),
        ({"report_id": "../etc/passwd"}, "report_id is missing or not a plain identifier"),
        ({"report_id": "abc\n"}, "report_id is missing or not a plain identifier"),
        ({"account": "u" * 300}, "does not validate against cybertipline_subset.xsd: .*espIdentifier"),
    ],
)
def test_refused_reports_name_the_report_in_one_line(change, message):
    report = dict(known_report(), **change)
    with pytest.raises(NcmecExportError, match=message) as exc:
        ncmec.to_cybertipline_xml(report, REPORTER)
    assert "\n" not in str(exc.value)
    assert "\x00" not in str(exc.value) and "uuuuuuuuuu" not in str(exc.value)  # never quotes values


# ------------------------------------------------------------------------------- the XSD can fail


def _mutated(mutate) -> bytes:
    root = ET.fromstring(ncmec.to_cybertipline_xml(context_report(), REPORTER))
    mutate(root)
    return ET.tostring(root)


def _drop(path: str):
    def mutate(root):
        parent_path, _, tag = path.rpartition("/")
        parent = root.find(parent_path) if parent_path else root
        parent.remove(parent.find(tag))
    return mutate


def _set(path: str, value: str):
    def mutate(root):
        root.find(path).text = value
    return mutate


def _swap_summary_and_reporter(root):
    report = root.find("report")
    summary = report.find("incidentSummary")
    report.remove(summary)
    report.insert(1, summary)


def _add(path: str, tag: str, value: str):
    def mutate(root):
        ET.SubElement(root.find(path), tag).text = value
    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _drop("report/incidentSummary/incidentType"),
        _drop("report/incidentSummary/incidentDateTime"),
        _drop("report/reporter/reportingPerson/email"),
        _drop("report/reporter"),
        _drop("fileDetails/fileViewedByEsp"),
        _set("report/incidentSummary/incidentType", "Something Else"),
        _set("report/incidentSummary/incidentDateTime", "yesterday"),
        _set("report/incidentSummary/incidentDateTime", "2026-11-28T10:00:00"),  # no zone
        _set("report/personOrUserReported/ipCaptureEvent/ipAddress", "not-an-ip"),
        _set("report/personOrUserReported/ipCaptureEvent/port", "0"),
        _set("report/personOrUserReported/ipCaptureEvent/eventName", "Download"),
        _set("fileDetails/fileViewedByEsp", "maybe"),
        _set("fileDetails/originalFileHash", "not hex"),
        _set("report/reporter/reportingPerson/email", "nobody"),
        _set("report/additionalInfo", "   "),
        _swap_summary_and_reporter,
        _add("report", "evidence", "x"),
    ],
)
def test_the_xsd_rejects_broken_documents(schema, mutate):
    xml = _mutated(mutate)
    assert not schema.is_valid(xml)
    with pytest.raises(NcmecExportError, match="does not validate") as exc:
        ncmec.validate_xml(xml, "test")
    assert "\n" not in str(exc.value)
    schema.validate(ncmec.to_cybertipline_xml(context_report(), REPORTER))  # the unbroken one passes


def test_validate_xml_on_garbage():
    with pytest.raises(NcmecExportError, match="test: "):
        ncmec.validate_xml(b"<report><unclosed></report>", "test")


# ------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    provider_priv, provider_pub = generate_keypair(root / "provider")
    _, other_pub = generate_keypair(root / "other")
    _, centre_pub = crypto.generate_centre_keypair(root / "centre")
    return argparse.Namespace(provider_priv=provider_priv, provider_pub=provider_pub, other_pub=other_pub,
                              centre_pub=centre_pub)


def sealed_signed(keys, report: dict) -> dict:
    sealed = crypto.seal_evidence(report, EVIDENCE + report["report_id"].encode(), "image/png", keys.centre_pub)
    return crypto.sign_report(sealed, keys.provider_priv)


@pytest.fixture
def signed(keys):
    return [sealed_signed(keys, f()) for f in ALL.values()]


def write_inputs(tmp_path: Path, reports: list, tampered: dict | None = None) -> Path:
    """The pipeline's layout: the same reports as JSON Lines and as Parquet."""
    folder = tmp_path / "reports"
    folder.mkdir()
    rows = reports if tampered is None else [tampered] + reports[1:]
    (folder / "reports-0.jsonl").write_text("".join(to_json_line(r) + "\n" for r in rows))
    pq.write_table(to_table(rows), folder / "reports-0.parquet")
    return folder


def run(capsys, *argv):
    parser = argparse.ArgumentParser(prog="csadetect")
    subparsers = parser.add_subparsers(dest="command", required=True)
    reports_cli.register(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_evidence(xml: bytes, reports: list) -> None:
    for report in reports:
        token = report["evidence_encrypted"]
        body = token.rsplit(":", 1)[1]
        content = EVIDENCE + report["report_id"].encode()
        for secret in (token.encode(), body.encode(), body[:24].encode(), content,
                       base64.b64encode(content), base64.b64encode(content)[:24]):
            assert secret not in xml
        assert report["signature"].encode() not in xml
    assert b"x25519-aesgcm" not in xml and b"ed25519:" not in xml


def test_cli_export_to_dir(capsys, tmp_path, keys, signed, schema):
    folder = write_inputs(tmp_path, signed)
    out = tmp_path / "ncmec"
    code, stdout, err = run(capsys, "reports", "export-ncmec", "--reporter-email", REPORTER["email"],
                            "--reporter-name", "Rita Reporter", "--public-key", keys.provider_pub,
                            "--private-service", "photos", "--out", out, folder)
    assert code == 0, err
    assert stdout == ""
    assert f"exported {len(signed)} reports" in err and f"({len(signed)} repeated rows skipped)" in err
    assert f"signatures verified under provider key {key_id(keys.provider_pub)}" in err
    written = sorted(out.iterdir())
    assert [p.name for p in written] == sorted(f"{r['report_id']}.xml" for r in signed)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        xml = path.read_bytes()
        schema.validate(xml)
        assert_no_evidence(xml, signed)
        root = ET.fromstring(xml)
        assert root.findtext("report/reporter/reportingPerson/firstName") == "Rita"
        for details in root.findall("fileDetails"):
            service = root.findtext("report/personOrUserReported/espService")
            assert details.findtext("publiclyAvailable") == ("false" if service == "photos" else None)


def test_cli_export_to_stdout_and_file(capsys, tmp_path, signed, schema):
    folder = write_inputs(tmp_path, signed)
    code, stdout, err = run(capsys, "reports", "export-ncmec", "--reporter-email", REPORTER["email"], folder)
    assert code == 0, err
    assert "signatures NOT checked" in err
    schema.validate(stdout.encode())
    root = ET.fromstring(stdout.encode())
    assert sorted(s.get("csadetectReportId") for s in root) == sorted(r["report_id"] for r in signed)
    assert_no_evidence(stdout.encode(), signed)

    reporter_file = tmp_path / "reporter.yaml"
    reporter_file.write_text("email: desk@provider.example\nfirst_name: Desk\nlegal_url: https://provider.example/le\n")
    target = tmp_path / "out" / "batch.xml"
    target.parent.mkdir()
    code, stdout, err = run(capsys, "reports", "export-ncmec", "--reporter-file", reporter_file,
                            "--out", target, folder / "reports-0.parquet")
    assert code == 0 and stdout == "" and str(target) in err
    xml = target.read_bytes()
    schema.validate(xml)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    legal_url = ET.fromstring(xml).findtext("cybertiplineSubmission/report/reporter/legalURL")
    assert legal_url == "https://provider.example/le"


def test_cli_refuses_tampered_report_with_public_key(capsys, tmp_path, keys, signed):
    tampered = dict(signed[0], account="someone-else")
    folder = write_inputs(tmp_path, signed, tampered=tampered)
    out = tmp_path / "ncmec"
    code, stdout, err = run(capsys, "reports", "export-ncmec", "--reporter-email", REPORTER["email"],
                            "--public-key", keys.provider_pub, "--out", out, folder / "reports-0.jsonl")
    assert code == 1 and stdout == ""
    lines = err.strip().splitlines()
    assert lines[0] == f"error: report {tampered['report_id']}: signature does not verify (report altered or wrong key)"
    assert lines[-1] == f"nothing written: 1 of {len(signed)} report rows refused"
    assert not out.exists()  # all or nothing
    # the wrong key refuses every report; without a key the same file exports
    code, _, err = run(capsys, "reports", "export-ncmec", "--reporter-email", REPORTER["email"],
                       "--public-key", keys.other_pub, "--out", out, folder / "reports-0.jsonl")
    assert code == 1 and err.count("signed by key") == len(signed) and not out.exists()
    code, _, _ = run(capsys, "reports", "export-ncmec", "--reporter-email", REPORTER["email"], "--out", out,
                     folder / "reports-0.jsonl")
    assert code == 0 and len(list(out.iterdir())) == len(signed)


def test_cli_bad_inputs_one_line(capsys, tmp_path, signed):
    folder = write_inputs(tmp_path, signed)

    def fails(*argv, expect: str):
        code, stdout, err = run(capsys, "reports", "export-ncmec", *argv)
        assert code == 1 and stdout == ""
        first = err.strip().splitlines()[0]
        assert first.startswith("error: ") and expect in first, err
        return err

    err = fails(folder, expect="reporting person's email is required")
    assert len(err.strip().splitlines()) == 1
    fails("--reporter-email", "x@y.example", tmp_path / "missing.jsonl", expect="missing.jsonl: no such file")
    fails("--reporter-email", "not-an-email", folder, expect="email is not an email address")
    fails("--reporter-email", "x@y.example", "--public-service", "photos", "--private-service", "photos", folder,
          expect="both public and private")
    bad = tmp_path / "bad.jsonl"
    pending = dict(signed[1], review_status="pending")
    bad.write_text(to_json_line(signed[0]) + "\nnot json\n" + to_json_line(pending) + "\n")
    err = fails("--reporter-email", "x@y.example", bad, expect=f"{bad}:2: not valid JSON")
    assert "only confirmed reports are exported" in err and "nothing written: 2 of 3" in err
    clash = tmp_path / "clash.jsonl"
    clash.write_text(to_json_line(signed[0]) + "\n" + to_json_line(dict(signed[0], score=0.5)) + "\n")
    fails("--reporter-email", "x@y.example", clash, expect="appears more than once with different content")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    fails("--reporter-email", "x@y.example", empty, expect="no reports found")


def test_cli_end_to_end_subprocess(tmp_path, signed, keys, schema):
    folder = write_inputs(tmp_path, signed)
    out = tmp_path / "ncmec"
    proc = subprocess.run(
        [sys.executable, "-m", "csadetect", "reports", "export-ncmec", "--reporter-email", REPORTER["email"],
         "--public-key", str(keys.provider_pub), "--out", str(out), str(folder)],
        capture_output=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"" and b"exported 5 reports" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{r['report_id']}.xml" for r in signed)
    for path in out.iterdir():
        schema.validate(path.read_bytes())


def test_cli_refuses_to_replace_an_earlier_export_without_force(capsys, tmp_path, signed):
    """FILE.xml or DIR/<report_id>.xml already there: one line, exit 1, nothing written (they were
    replaced silently); --force replaces them."""
    folder = write_inputs(tmp_path, signed)
    target = tmp_path / "export.xml"
    target.write_bytes(b"an earlier export")
    base = ["reports", "export-ncmec", "--reporter-email", REPORTER["email"]]
    code, stdout, err = run(capsys, *base, "--out", target, folder)
    assert code == 1 and stdout == ""
    assert err == f"error: {target} exists; pass --force to replace, or choose another --out\n"
    assert target.read_bytes() == b"an earlier export"
    code, _, err = run(capsys, *base, "--out", target, "--force", folder)
    assert code == 0 and target.read_bytes().startswith(b"<?xml"), err

    out = tmp_path / "ncmec"
    out.mkdir()
    first = out / f"{signed[0]['report_id']}.xml"
    first.write_bytes(b"kept")
    code, _, err = run(capsys, *base, "--out", out, folder)
    assert code == 1 and err == f"error: {first} exists; pass --force to replace, or choose another --out\n"
    assert [p.name for p in out.iterdir()] == [first.name] and first.read_bytes() == b"kept"
