"""Reports as NCMEC CyberTipline report XML (``csadetect reports export-ncmec``; docs/ncmec.md).

:func:`to_cybertipline_xml` maps one report (schema 1.2, :mod:`csadetect.reports.schema`) to one
``<cybertiplineSubmission>`` document: the CyberTipline ``<report>`` (what the CyberTipline
Reporting API's ``/submit`` takes) followed by one ``<fileDetails>`` per reported file (what
``/fileinfo`` takes after the file itself went to ``/upload``). :func:`to_cybertipline_batch`
wraps several in one ``<cybertiplineExport>``. Both validate against our own subset schema
``csadetect/reports/schemas/cybertipline_subset.xsd`` before they are returned.

**Evidence is never decrypted or embedded.** The export carries the content hashes (MD5, SHA-256,
PDQ) and the report id only; ``evidence_encrypted`` (sealed for the EU Centre) and ``signature``
are not read. NCMEC receives the files themselves separately, from the provider's own copy, through
the API's upload call (``/upload``, then ``/fileinfo`` with the matching ``<fileDetails>``, whose
``reportId`` and ``fileId`` NCMEC assigns and the submitter fills in).

Where the names come from. NCMEC's authoritative XSD (``GET /ispws/xsd``) needs reporter
credentials and is not available offline; nothing here was checked against it.

* Element names, their order and the value lists (``incidentType``'s eight values, ``eventName``,
  ``fileRelevance``, ``nameValuePair/@type``), the ``hashType`` attribute and the length limits
  follow the public CyberTipline Reporting API documentation as modelled by the open-source client
  ``Nachtalb/ncmec-cybertip`` (``src/ncmec_cybertip/report.py``: ``report``, ``incidentSummary``,
  ``reporter``/``reportingPerson``/``contactPerson``/``legalURL``, ``personOrUserReported``/
  ``espIdentifier``/``espService``/``ipCaptureEvent``/``estimatedLocation``/``additionalInfo``;
  ``files.py``: ``fileDetails``, ``uploadedToEspTimestamp``, ``fileViewedByEsp``,
  ``publiclyAvailable``, ``fileRelevance``, ``originalFileHash/@hashType``,
  ``details/nameValuePair``; ``common.py``: ``ipCaptureEvent`` = ``ipAddress``, ``eventName``,
  ``dateTime``, ``possibleProxy``, ``port``; ``enums.py``).
* The same element orders appear in independent public report builders that test them against
  the XSD (a TypeScript builder's "XSD ordering locks" for ``incidentSummary``,
  ``personOrUserReported``, ``fileDetails`` and ``ipCaptureEvent``, and a Python builder's
  ``REPORT_ORDER``/``REPORTER_ORDER``/``FILE_DETAILS_ORDER``), and the eight incident types verbatim
  in several more.
* ``cybertiplineSubmission``/``cybertiplineExport`` and their ``csadetect*`` attributes are ours.

Mapping choices (the table is in docs/ncmec.md): known and new material are "Child Pornography
(possession, manufacture, and distribution)", grooming is "Online Enticement of Children for Sexual
Acts"; ``review_status: confirmed`` means ``fileViewedByEsp`` true; the PDQ hash goes in a
``details/nameValuePair`` of type ``HASH``; what has no element of its own (detector, score,
indicator ids, conversation id, risk patterns, order, provider id, our report id) goes in the
``additionalInfo`` texts. A value the report does not have is left out, never sent empty. XML is
built with :mod:`xml.etree.ElementTree`, which escapes every value; a value with characters XML
cannot carry is refused, not altered. Errors are :class:`NcmecExportError`, one line each, and
never quote content.
"""
from __future__ import annotations

import copy
import functools
import ipaddress
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from csadetect.core.ids import is_safe_id
from csadetect.core.timeutil import parse_time, utc_iso

XSD_PATH = Path(__file__).resolve().parent / "schemas" / "cybertipline_subset.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = XSD_PATH.name

CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
INCIDENT_TYPES = (
    CHILD_PORNOGRAPHY,
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    ONLINE_ENTICEMENT,
    "Unsolicited Obscene Material Sent to a Child",
)
INCIDENT_TYPE = {"known": CHILD_PORNOGRAPHY, "new": CHILD_PORNOGRAPHY, "grooming": ONLINE_ENTICEMENT}
REPORTABLE_STATUSES = ("auto_confirmed", "confirmed")
REPORTER_KEYS = ("email", "first_name", "last_name", "contact_email", "legal_url")

# used with fullmatch (``$`` would accept a trailing newline)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL = re.compile(r"https?://\S+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
# characters XML 1.0 cannot carry (control characters, surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HASH_LENGTHS = {"content_md5": 32, "content_sha256": 64, "content_pdq": 64}


class NcmecExportError(ValueError):
    """A report or reporter that cannot be exported; the message is one line and names no content."""


# ------------------------------------------------------------------------------- small helpers


def report_label(report: Mapping[str, Any]) -> str:
    """``report <id>`` for messages."""
    rid = report.get("report_id")
    if not rid:
        return "report (no report_id)"
    text = str(rid)
    return f"report {text}" if is_safe_id(text) else f"report {text[:64]!r}"


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _text(value: Any, field: str, label: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if _NOT_XML.search(text):
        raise NcmecExportError(f"{label}: {field} has characters XML cannot carry")
    return text


def _el(parent: ET.Element, tag: str, text: Optional[str] = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _num(value: float) -> str:
    return f"{float(value):.6g}"


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _zoned_time(value: Any, field: str, label: str) -> str:
    """An RFC 3339 time as UTC ``YYYY-MM-DDThh:mm:ss[.ffffff]Z``; refuses a time without a zone."""
    try:
        return utc_iso(parse_time(str(value), field=field), timespec="auto")
    except ValueError as exc:
        raise NcmecExportError(f"{label}: {exc}") from None


def _hash(report: Mapping[str, Any], field: str, label: str) -> Optional[str]:
    value = report.get(field)
    if not _given(value):
        return None
    if not (isinstance(value, str) and _HEX.fullmatch(value) and len(value) == _HASH_LENGTHS[field]):
        raise NcmecExportError(f"{label}: {field} is not {_HASH_LENGTHS[field]} hex digits")
    return value.lower()


def _info(lines: Iterable[Optional[str]]) -> Optional[str]:
    kept = [line for line in lines if line]
    return "\n".join(kept) if kept else None


# ------------------------------------------------------------------------------- the reporter


def reporter_from(values: Optional[Mapping[str, Any]]) -> dict:
    """The reporting person as a checked dict (keys :data:`REPORTER_KEYS`; ``email`` required).
    NCMEC identifies the reporting ESP by its API credentials; the person is who NCMEC contacts."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(REPORTER_KEYS))
    if unknown:
        raise NcmecExportError(f"reporter: unknown key(s) {', '.join(unknown)} (known: {', '.join(REPORTER_KEYS)})")
    out = {k: str(v).strip() for k, v in values.items() if _given(v)}
    if "email" not in out:
        raise NcmecExportError("reporter: the reporting person's email is required (--reporter-email)")
    for key in ("email", "contact_email"):
        if key in out and (not _EMAIL.fullmatch(out[key]) or len(out[key]) > 255):
            raise NcmecExportError(f"reporter: {key} is not an email address")
    for key in ("first_name", "last_name"):
        if key in out and len(out[key]) > 100:
            raise NcmecExportError(f"reporter: {key} is longer than 100 characters")
    if "legal_url" in out and (not _URL.fullmatch(out["legal_url"]) or len(out["legal_url"]) > 2083):
        raise NcmecExportError("reporter: legal_url is not an http(s) URL of at most 2083 characters")
    for key, value in out.items():
        _text(value, key, "reporter")
    return out


def split_name(name: Optional[str]) -> dict:
    """``"Jane Q Doe"`` -> ``{"first_name": "Jane", "last_name": "Q Doe"}``; empty -> ``{}``."""
    parts = (name or "").split(None, 1)
    return dict(zip(("first_name", "last_name"), parts))


def _reporter(root: ET.Element, reporter: Mapping[str, str]) -> None:
    section = _el(root, "reporter")
    person = _el(section, "reportingPerson")
    for key, tag in (("first_name", "firstName"), ("last_name", "lastName"), ("email", "email")):
        if key in reporter:
            _el(person, tag, reporter[key])
    if "contact_email" in reporter:
        _el(_el(section, "contactPerson"), "email", reporter["contact_email"])
    if "legal_url" in reporter:
        _el(section, "legalURL", reporter["legal_url"])


# ------------------------------------------------------------------------------- <report>


def _check_reportable(report: Mapping[str, Any], label: str) -> str:
    rid = report.get("report_id")
    if not is_safe_id(rid):
        raise NcmecExportError(f"{label}: report_id is missing or not a plain identifier")
    dtype = report.get("detection_type")
    if dtype not in INCIDENT_TYPE:
        raise NcmecExportError(f"{label}: detection_type {str(dtype)[:40]!r} is not known, new or grooming")
    status = report.get("review_status")
    if status not in REPORTABLE_STATUSES:
        raise NcmecExportError(f"{label}: review_status {str(status)[:40]!r}: only confirmed reports are exported")
    return dtype


def _incident_summary(root: ET.Element, report: Mapping[str, Any], dtype: str, label: str) -> None:
    if not _given(report.get("occurred_at")):
        raise NcmecExportError(f"{label}: occurred_at is missing (the incident date and time)")
    summary = _el(root, "incidentSummary")
    _el(summary, "incidentType", INCIDENT_TYPE[dtype])
    if report.get("urgent"):
        _el(summary, "escalateToHighPriority",
            "Imminent risk to a child flagged by the provider (EU CSA Regulation, Art. 13(1)(j)).")
    _el(summary, "incidentDateTime", _zoned_time(report["occurred_at"], "occurred_at", label))
    if _given(report.get("time_zone")):
        zone = _text(report["time_zone"], "time_zone", label)
        _el(summary, "incidentDateTimeDescription", f"Time zone at the user, as given by the service: {zone[:200]}")


def _ip_capture_event(parent: ET.Element, report: Mapping[str, Any], dtype: str, label: str) -> None:
    try:
        ip = ipaddress.ip_address(str(report["ip"]).strip())
    except ValueError:
        raise NcmecExportError(f"{label}: ip is not an IPv4 or IPv6 address") from None
    event = _el(parent, "ipCaptureEvent")
    _el(event, "ipAddress", ip.compressed)
    # an image or video reaches the service as an upload; a message does not map to a named event
    _el(event, "eventName", "Other" if dtype == "grooming" else "Upload")
    _el(event, "dateTime", _zoned_time(report["occurred_at"], "occurred_at", label))
    port = report.get("port")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise NcmecExportError(f"{label}: port is not a number from 1 to 65535")
        _el(event, "port", str(port))


def _person_or_user_reported(root: ET.Element, report: Mapping[str, Any], dtype: str, label: str) -> None:
    account, service = report.get("account"), report.get("service")
    country, device, action = report.get("country"), report.get("device"), report.get("account_action")
    coded = _given(country) and bool(_COUNTRY.fullmatch(str(country).strip()))
    info = _info([
        None if not _given(country) or coded else f"Location (country), as given: {_text(country, 'country', label)}",
        f"Device, as given: {_text(device, 'device', label)}" if _given(device) else None,
        f"Action taken on the account: {_text(action, 'account_action', label)}" if _given(action) else None,
    ])
    if not any((_given(account), _given(service), _given(report.get("ip")), coded, info)):
        return
    section = _el(root, "personOrUserReported")
    if _given(account):
        _el(section, "espIdentifier", _text(account, "account", label))
    if _given(service):
        _el(section, "espService", _text(service, "service", label))
    if _given(report.get("ip")):
        _ip_capture_event(section, report, dtype, label)
    if coded:
        _el(_el(section, "estimatedLocation"), "countryCode", str(country).strip().upper())
    if info:
        _el(section, "additionalInfo", info)


def _detection_line(report: Mapping[str, Any], label: str) -> str:
    line = f"Detection: {report.get('detection_type')}"
    if _given(report.get("detector")):
        line += f" by {_text(report['detector'], 'detector', label)}"
    if _given(report.get("detector_version")):
        line += f" ({_text(report['detector_version'], 'detector_version', label)})"
    if report.get("score") is not None:
        line += f", score {_num(report['score'])}"
        if report.get("threshold") is not None:
            line += f" (threshold {_num(report['threshold'])})"
    return line


def _review_line(report: Mapping[str, Any], label: str) -> str:
    if report.get("review_status") == "confirmed":
        when = report.get("reviewed_at")
        return "Review: confirmed by a human reviewer at the provider" + (
            f" at {_zoned_time(when, 'reviewed_at', label)}" if _given(when) else "")
    return "Review: confirmed automatically (no person at the provider viewed the content)"


def _report_info(report: Mapping[str, Any], dtype: str, label: str) -> str:
    t = functools.partial(_text, label=label)
    risk = report.get("risk_patterns") or []
    lines = [
        f"Reporting provider: {t(report['provider_id'], 'provider_id')}" if _given(report.get("provider_id")) else None,
        f"Provider report id: {report['report_id']}"
        + (f" (csadetect report schema {t(report['schema_version'], 'schema_version')})"
           if _given(report.get("schema_version")) else ""),
        f"Provider event id: {t(report['event_id'], 'event_id')}" if _given(report.get("event_id")) else None,
        _detection_line(report, label),
        _review_line(report, label),
    ]
    if dtype == "grooming":
        lines += [
            f"Conversation id: {t(report['conversation_id'], 'conversation_id')}"
            if _given(report.get("conversation_id")) else None,
            f"Risk patterns found: {', '.join(t(p, 'risk_patterns') for p in risk)}" if risk else None,
            "The flagged messages are not included in this report.",
        ]
    lines += [
        None if report.get("content_removed") is None
        else f"Content removed or access disabled: {_yes(report['content_removed'])}",
        f"Legal basis: {t(report['legal_basis'], 'legal_basis')}" if _given(report.get("legal_basis")) else None,
        f"Detection order: {t(report['order_id'], 'order_id')}" if _given(report.get("order_id")) else None,
        f"Also reported to: {t(report['reported_to_third_country'], 'reported_to_third_country')}"
        if _given(report.get("reported_to_third_country")) else None,
    ]
    return _info(lines)


# ------------------------------------------------------------------------------- <fileDetails>


def _match_text(match: Mapping[str, Any], label: str) -> str:
    parts = [f"{match.get('kind')}" if match.get("kind") else None,
             f"distance {_num(match['distance'])}" if match.get("distance") is not None else None,
             f"category {_text(match['category'], 'category', label)}" if _given(match.get("category")) else None]
    inner = ", ".join(p for p in parts if p)
    return f"{_text(match.get('indicator_id'), 'indicator_id', label)}" + (f" ({inner})" if inner else "")


def _file_info(report: Mapping[str, Any], label: str) -> Optional[str]:
    matches = report.get("matches") or []
    ids = report.get("indicator_ids") or []
    kind = [f"{_text(report['content_kind'], 'content_kind', label)}" if _given(report.get("content_kind")) else None,
            f"MIME {_text(report['mime'], 'mime', label)}" if _given(report.get("mime")) else None]
    return _info([
        _detection_line(report, label),
        f"Matched indicators: {'; '.join(_match_text(m, label) for m in matches)}" if matches
        else (f"Matched indicators: {', '.join(_text(i, 'indicator_ids', label) for i in ids)}" if ids else None),
        f"Best match distance: {_num(report['distance'])}" if report.get("distance") is not None else None,
        f"Content: {', '.join(k for k in kind if k)}" if any(kind) else None,
        _review_line(report, label),
    ])


def _file_details(parent: ET.Element, report: Mapping[str, Any], label: str,
                  public_services: Optional[Mapping[str, bool]]) -> None:
    md5, sha256 = _hash(report, "content_md5", label), _hash(report, "content_sha256", label)
    pdq = _hash(report, "content_pdq", label)
    if md5 is None and sha256 is None:
        return  # no file to describe (grooming, or a report without content hashes)
    details = _el(parent, "fileDetails")
    if _given(report.get("occurred_at")):
        _el(details, "uploadedToEspTimestamp", _zoned_time(report["occurred_at"], "occurred_at", label))
    _el(details, "fileViewedByEsp", "true" if report.get("review_status") == "confirmed" else "false")
    public = (public_services or {}).get(report.get("service"))
    if public is not None:
        _el(details, "publiclyAvailable", "true" if public else "false")
    _el(details, "fileRelevance", "Reported")
    if md5 is not None:
        _el(details, "originalFileHash", md5, hashType="MD5")
    if sha256 is not None:
        _el(details, "originalFileHash", sha256, hashType="SHA256")
    if pdq is not None:
        pair = _el(_el(details, "details"), "nameValuePair", type="HASH")
        _el(pair, "name", "PDQ")
        _el(pair, "value", pdq)
    info = _file_info(report, label)
    if info:
        _el(details, "additionalInfo", info)


# ------------------------------------------------------------------------------- documents


def submission(report: Mapping[str, Any], reporter: Optional[Mapping[str, Any]] = None, *,
               public_services: Optional[Mapping[str, bool]] = None) -> ET.Element:
    """The ``<cybertiplineSubmission>`` element of one report (not validated; see
    :func:`to_cybertipline_xml`). ``public_services`` maps a service name to whether its files are
    publicly available; services not in it get no ``publiclyAvailable``."""
    if not isinstance(report, Mapping):
        raise NcmecExportError(f"a report is a JSON object, not {type(report).__name__}")
    label = report_label(report)
    dtype = _check_reportable(report, label)
    checked = reporter_from(reporter)
    attrs = {"csadetectReportId": report["report_id"]}
    if _given(report.get("schema_version")):
        attrs["csadetectSchemaVersion"] = _text(report["schema_version"], "schema_version", label)
    root = ET.Element("cybertiplineSubmission", attrs)
    ncmec_report = _el(root, "report")
    _incident_summary(ncmec_report, report, dtype, label)
    _reporter(ncmec_report, checked)
    _person_or_user_reported(ncmec_report, report, dtype, label)
    _el(ncmec_report, "additionalInfo", _report_info(report, dtype, label))
    if dtype != "grooming":
        _file_details(root, report, label, public_services)
    return root


def serialise(root: ET.Element) -> bytes:
    """UTF-8 XML with a declaration, indented, naming our schema; ``root`` is not changed."""
    root = copy.deepcopy(root)
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


@functools.lru_cache(maxsize=1)
def subset_schema():
    """Our subset XSD, loaded once (``xmlschema``)."""
    import xmlschema

    return xmlschema.XMLSchema(str(XSD_PATH))


def validate_xml(xml: bytes, label: str = "export") -> None:
    """Raise :class:`NcmecExportError` (one line: where and why) unless ``xml`` is valid under
    :data:`XSD_PATH`."""
    import xmlschema

    try:
        error = next(subset_schema().iter_errors(xml), None)
    except (xmlschema.XMLSchemaException, ET.ParseError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NcmecExportError(f"{label}: not well-formed XML: {first}") from None
    if error is not None:
        reason = (error.reason or "invalid").strip().splitlines()[0]
        raise NcmecExportError(f"{label}: does not validate against {XSD_PATH.name}: {error.path}: {reason}")


def to_cybertipline_xml(report: Mapping[str, Any], reporter: Optional[Mapping[str, Any]] = None, *,
                        public_services: Optional[Mapping[str, bool]] = None, validate: bool = True) -> bytes:
    """One report as a ``<cybertiplineSubmission>`` XML document (bytes, UTF-8), validated against
    the subset XSD unless ``validate`` is false. ``reporter``: see :func:`reporter_from`."""
    xml = serialise(submission(report, reporter, public_services=public_services))
    if validate:
        validate_xml(xml, report_label(report))
    return xml


def to_cybertipline_batch(reports: Iterable[Mapping[str, Any]], reporter: Optional[Mapping[str, Any]] = None, *,
                          public_services: Optional[Mapping[str, bool]] = None, validate: bool = True) -> bytes:
    """Several reports in one ``<cybertiplineExport>`` document, one ``<cybertiplineSubmission>``
    each, in order."""
    return batch_document([submission(r, reporter, public_services=public_services) for r in reports],
                          validate=validate)


def batch_document(submissions: Iterable[ET.Element], validate: bool = True) -> bytes:
    """``<cybertiplineExport>`` around already built submissions (see :func:`submission`)."""
    root = ET.Element("cybertiplineExport")
    root.extend(submissions)
    if not len(root):
        raise NcmecExportError("no reports to export")
    xml = serialise(root)
    if validate:
        validate_xml(xml, "export")
    return xml
