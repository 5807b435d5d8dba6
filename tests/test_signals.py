"""Signal types (csadetect.signals): every registered type validates, round-trips, computes from
media and matches itself; SHA-1 works end to end; and a new type is one class plus one
``register`` call, with no other code change (two toy types prove it)."""
from __future__ import annotations

import csv
import hashlib
import json
import re
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from csadetect.cli import indicators as cli
from csadetect.cli.main import main as csadetect_main
from csadetect.config.settings import Limits, MatchSettings
from csadetect.core.keys import generate_keypair
from csadetect.events.event import make_event, parse_event
from csadetect.indicators.index import load_index
from csadetect.indicators.rows import Indicator, IndicatorError, from_media, kind_named, read_csv
from csadetect.indicators.snapshot import SnapshotError, build_snapshot, load_snapshot
from csadetect.media import synth
from csadetect.media.hashing import hash_file, hash_image, hash_image_with_views
from csadetect.signals import (
    SIGNAL_TYPES,
    Hit,
    Media,
    SignalError,
    SignalIndex,
    SignalType,
    describe,
    digests,
    for_content,
    get,
    names,
    register,
)
from csadetect.signals.digest import DigestSignal
from csadetect.signals.embedding import EMBEDDING_BOXES, EMBEDDING_REGIONS, EMBEDDING_TURNS
from csadetect.transforms.decide import needs_review
from csadetect.transforms.hash import HashMediaFn
from tests.conftest import need_shared

BAD = ["", "   ", "zz", "@" * 64, "ab cd"]
SETTINGS = MatchSettings()


def _matched(matches, kind: str = "image"):
    """What Decide sees of an item of ``kind`` with ``matches`` (``needs_review`` reads only these)."""
    return SimpleNamespace(matches=matches, item=SimpleNamespace(event=SimpleNamespace(kind=kind)))


@pytest.mark.parametrize("name", names())
def test_values_validate_and_round_trip(name):
    signal = get(name)
    examples = signal.examples()
    assert len(set(examples)) >= 2
    for value in examples:
        assert signal.validate(value) == value  # examples are canonical
        assert signal.validate(f"  {value}\n") == value
        assert signal.distance(value, value) == 0
        if signal.default_threshold is not None:
            assert signal.distance(value, value) <= signal.default_threshold
    assert signal.distance(examples[0], examples[1]) > 0
    for bad in BAD:
        with pytest.raises(SignalError) as err:
            signal.validate(bad)
        assert "\n" not in str(err.value)
    assert signal.unit and set(signal.content) <= {"image", "video"}


@pytest.mark.parametrize("name", names())
def test_indicator_rows_go_through_the_signal_type(name):
    value = get(name).examples()[0]
    assert Indicator("x", name.upper(), f" {value} ").value == value
    with pytest.raises(IndicatorError) as row_error:
        Indicator("x", name, "zz")
    with pytest.raises(SignalError) as signal_error:
        get(name).validate("zz")
    assert str(row_error.value) == str(signal_error.value)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.binary(min_size=16, max_size=16), max_size=9), cut=st.integers(0, 4), data=st.data())
def test_hex_to_codes_reads_the_data_buffer_of_any_chunking_or_slice(values, cut, data):
    """Hex columns are parsed from the string data buffer (no Python object per value): sliced and
    chunked arrays, and string and large_string types, give bytes.fromhex's answer."""
    from csadetect.signals import hex_to_codes

    hexes = [v.hex() for v in values]
    expected = np.array([list(v) for v in values], dtype=np.uint8).reshape(len(values), 16)
    split = data.draw(st.integers(0, len(hexes)))
    for kind in (pa.string(), pa.large_string()):
        whole = pa.array(["0" * 32] * cut + hexes, kind).slice(cut)
        chunked = pa.chunked_array([pa.array(hexes[:split], kind), pa.array(hexes[split:], kind)], kind)
        for column in (whole, chunked, hexes):
            assert np.array_equal(hex_to_codes(column, 16), expected)
    if hexes:
        for bad in (hexes[:-1] + [hexes[-1].upper().replace("A", "G")[:31] + "Z"], hexes[:-1] + [hexes[-1][:30]]):
            with pytest.raises(SignalError):
                hex_to_codes(pa.array(bad), 16)


def test_registry():
    assert names()[0] == "pdq"  # the snapshot stores PDQ rows first
    with pytest.raises(SignalError, match="unknown kind 'sha512'"):
        get("sha512")
    with pytest.raises(ValueError, match="already registered"):
        register(get("md5"))
    assert digests() == ("md5", "sha256", "sha1")
    assert [s.name for s in for_content("image")] == ["pdq", "embedding", "md5", "sha256", "sha1"]
    assert [s.name for s in for_content("video")] == ["vpdq", "md5", "sha256", "sha1"]
    ranks = sorted(SIGNAL_TYPES, key=lambda n: get(n).evidence)
    assert ranks == ["sha256", "sha1", "md5", "vpdq", "pdq", "embedding"]


class FakeEmbedder:
    """An embedding 'model' for tests: a random vector seeded by the picture's pixels, so only the
    very same picture is a near-duplicate."""

    version = "fake-1"

    def embed(self, images):
        return np.stack([np.random.default_rng(list(hashlib.sha256(img.tobytes()).digest())).normal(size=16)
                         for img in images])


def _db(tmp_path, rows):
    private, public = generate_keypair(tmp_path / "keys")
    build_snapshot(rows, tmp_path / "db", private)
    return load_index(tmp_path / "db", public, SETTINGS)


def test_image_signals_from_media_match_themselves(tmp_path):
    path = tmp_path / "known.jpg"
    data = synth.jpeg_bytes(synth.synthetic_image(4))
    path.write_bytes(data)
    hashes, pictures = hash_image_with_views(data, digests=digests())
    media = Media(hashes, pictures[0][1], FakeEmbedder())
    for signal in for_content("image"):
        for _, value in signal.indicator_values(media, SETTINGS):
            assert signal.validate(value) == value, signal.name
    assert hashes.digests == {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha256", "sha1")}

    rows = from_media([str(path)], SETTINGS, embedder=FakeEmbedder())
    kinds = [r.kind for r in rows]
    # the image, its crop and two rotations, the region rows (match.embedding_region_rows, on by default), the
    # box rows (match.embedding_box_rows) and the turned-and-cropped rows (match.embedding_turn_rows)
    n_embedding = 4 + sum(len(anchors) for _, anchors in EMBEDDING_REGIONS + EMBEDDING_BOXES) + len(EMBEDDING_TURNS)
    # the picture's PDQ and its value channel's (match.value_view, on by default: a colour picture)
    assert kinds == ["pdq", "pdq"] + ["embedding"] * n_embedding + ["md5", "sha256"]  # sha1 is for imported lists only
    index = _db(tmp_path, rows)
    vectors = FakeEmbedder().embed([pictures[0][1]])
    matches = index.match_image(hash_image_with_views(data, value=True)[0], vectors, FakeEmbedder.version, 0.9999)
    assert [m.kind for m in matches] == ["pdq", "pdq", "embedding", "md5", "sha256"]
    assert all(m.distance == 0 for m in matches)
    assert not needs_review(_matched(matches), SETTINGS)
    assert describe(hashes) == {"pdq": hashes.pdq.hex(), "quality": hashes.quality, "md5": hashes.md5,
                                "sha256": hashes.sha256}


def test_video_signals_from_media_match_themselves(tmp_path):
    video = str(need_shared("vpdq", "videos") / "pattern-sd-grey-bar.mp4")
    rows = from_media([video], SETTINGS)
    assert [r.kind for r in rows] == ["vpdq", "md5", "sha256"]
    hashes = hash_file(video, digests=digests())
    assert hashes.digests["sha1"] == hashlib.sha1(open(video, "rb").read()).hexdigest()
    matches = _db(tmp_path, rows).match_video(hashes)
    assert [(m.kind, m.distance) for m in matches] == [("vpdq", 0.0), ("md5", 0), ("sha256", 0)]
    assert list(describe(hashes)) == ["md5", "sha256", "vpdq"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines() if line.strip()], out.err


def test_sha1_end_to_end(tmp_path, capsys):
    """An imported SHA-1 list: build from a hash list (--kind sha1) and from CSV, match files with
    the CLI, and the pipeline's hashing + index + decision."""
    known, other = tmp_path / "known.jpg", tmp_path / "other.jpg"
    known.write_bytes(synth.jpeg_bytes(synth.synthetic_image(5)))
    other.write_bytes(synth.jpeg_bytes(synth.synthetic_image(6)))
    sha1 = hashlib.sha1(known.read_bytes()).hexdigest()
    listing = tmp_path / "sha1s.txt"
    listing.write_text(f"# an imported list\n{sha1.upper()}\n{'0' * 40}\n")
    keys, db = tmp_path / "keys", tmp_path / "db"
    run(capsys, "indicators", "keygen", "--out", keys)
    code, out, _ = run(capsys, "indicators", "build", "--input", listing, "--kind", "sha1",
                       "--key", keys / "private.pem", "--out", db)
    assert code == 0 and out[0]["counts"]["kinds"] == {"sha1": {"active": 2, "disabled": 0}}
    code, out, _ = run(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", keys / "public.pem",
                       known, other)
    assert code == 0 and out[0]["matches"] == [{"indicator_id": "sha1s-2", "kind": "sha1", "distance": 0,
                                                "category": "unspecified", "threshold": 0, "note": ""}]
    assert out[1]["matched"] is False

    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_text(f"indicator_id,kind,value,category\nimported-1,sha1,{sha1},imported\n")
    assert [(r.kind, r.value) for r in read_csv(str(rows_csv))] == [("sha1", sha1)]
    code, _, err = run(capsys, "indicators", "build", "--input", rows_csv, "--kind", "sha1",
                       "--key", keys / "private.pem", "--out", tmp_path / "db2")
    assert code == 1 and "a kind is given for hash lists only" in err
    code, _, _ = run(capsys, "indicators", "build", "--input", rows_csv, "--key", keys / "private.pem",
                     "--out", tmp_path / "db2")
    assert code == 0

    # the pipeline's stages: HashMedia hashes the bytes with SHA-1, the index finds it, Decide confirms
    event = parse_event(json.dumps(make_event("e1", known.read_bytes())))
    fn = HashMediaFn(Limits(), SETTINGS)
    fn.setup()
    (item,) = list(fn.process(event))
    index = load_index(tmp_path / "db2", keys / "public.pem", SETTINGS)
    matches = index.match_image(item.image)
    assert [(m.indicator_id, m.kind, m.category) for m in matches] == [("imported-1", "sha1", "imported")]
    assert not needs_review(_matched(matches), SETTINGS)


# ------------------------------------------------------------------------------- a new signal type


class Sha512Signal(DigestSignal):
    """A toy digest type: the whole of a new digest kind is these three lines."""

    name = "sha512"
    evidence = 6


class SizeIndex(SignalIndex):
    def __init__(self, values, rows):
        self.rows: dict[str, list[int]] = {}
        for value, row in zip(values.to_pylist(), rows):
            self.rows.setdefault(value, []).append(int(row))

    @property
    def nbytes(self) -> int:
        return 0

    def query(self, probe) -> list[Hit]:
        return [Hit(row, 0) for row in self.rows.get(probe, [])]


class SizeSignal(SignalType):
    """A toy type with its own value format and index: an image's size in pixels (``WxH``)."""

    name = "size"
    content = ("image",)
    unit = "exact"
    default_threshold = 0
    evidence = 7
    exact = True

    def normalise(self, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", value.strip()):
            raise SignalError("size value must be WIDTHxHEIGHT")
        return value.strip()

    def distance(self, a, b):
        return int(self.validate(a) != self.validate(b))

    def examples(self):
        return ["640x480", "1x1"]

    def build_index(self, values, rows, settings, packed=None):
        return SizeIndex(values, rows)

    def indicator_values(self, media, settings):
        return [("", self.probe(media.hashes, settings))]

    def describe(self, hashes):
        return {"size": self.probe(hashes, None)}

    def probe(self, hashes, settings):
        return f"{hashes.width}x{hashes.height}"


@pytest.fixture
def toy_types():
    """Registers the toy types through the public function, and removes them afterwards."""
    added = [register(Sha512Signal()), register(SizeSignal())]
    yield added
    for signal in added:
        SIGNAL_TYPES.pop(signal.name)


def test_a_new_signal_type_is_one_class_and_one_registration(tmp_path, capsys, toy_types):
    known = tmp_path / "known.jpg"
    data = synth.jpeg_bytes(synth.synthetic_image(7, (320, 200)))
    known.write_bytes(data)
    sha512 = hashlib.sha512(data).hexdigest()

    # rows: validation and normalisation, CSV
    assert Indicator("a", "SHA512", sha512.upper()).value == sha512
    with pytest.raises(IndicatorError, match="sha512 value must be 128 hex characters"):
        Indicator("a", "sha512", sha512[:-2])
    with pytest.raises(IndicatorError, match="size value must be WIDTHxHEIGHT"):
        Indicator("a", "size", "wide")
    rows_csv = tmp_path / "rows.csv"
    with open(rows_csv, "w", newline="") as fh:
        csv.writer(fh).writerows([["indicator_id", "kind", "value"], ["s", "sha512", sha512], ["z", "size", "320x200"]])
    rows = read_csv(str(rows_csv))

    # snapshot build, load and counts
    keys, db = tmp_path / "keys", tmp_path / "db"
    private, public = generate_keypair(keys)
    build_snapshot(rows + [Indicator("p", "pdq", get("pdq").examples()[0])], db, private)
    assert load_snapshot(db, public).counts()["kinds"] == {
        "pdq": {"active": 1, "disabled": 0}, "sha512": {"active": 1, "disabled": 0}, "size": {"active": 1, "disabled": 0}}

    # index and match: the file's bytes are hashed with SHA-512 because the type is registered
    index = load_index(db, public, SETTINGS)
    matches = index.match_image(hash_image(data, digests=digests()))
    assert [(m.indicator_id, m.kind, m.distance) for m in matches] == [("s", "sha512", 0), ("z", "size", 0)]
    assert index.memory_stats()["sha512_index"] == 64 + 4
    assert not needs_review(_matched(matches), SETTINGS)

    # the command line: hash, from-media, build from a hash list of the new kind, match
    assert json.loads(_hash_output(capsys, known))["sha512"] == sha512
    code, _, _ = run(capsys, "indicators", "from-media", "--no-embedding", "--out", tmp_path / "media.csv", known)
    assert code == 0
    assert {r.kind for r in read_csv(str(tmp_path / "media.csv"))} == {"pdq", "md5", "sha256", "sha512", "size"}
    listing = tmp_path / "list.txt"
    listing.write_text(sha512 + "\n")
    code, _, _ = run(capsys, "indicators", "build", "--input", listing, "--kind", "sha512", "--key", private,
                     "--out", tmp_path / "db2")
    assert code == 0
    code, out, _ = run(capsys, "match", "--no-embedding", "--indicators", tmp_path / "db2", "--public-key", public, known)
    assert code == 0 and [m["kind"] for m in out[0]["matches"]] == ["sha512"]

    # the pipeline's hashing computes it too
    (item,) = list(HashMediaFn(Limits(), SETTINGS).process(parse_event(json.dumps(make_event("e", data)))))
    assert item.image.digests["sha512"] == sha512


def _hash_output(capsys, path) -> str:
    assert csadetect_main(["hash", str(path)]) == 0
    return capsys.readouterr().out


def test_toy_types_are_gone_afterwards():
    assert "sha512" not in SIGNAL_TYPES and "size" not in SIGNAL_TYPES
    with pytest.raises(IndicatorError, match="unknown kind"):
        Indicator("a", "size", "1x1")


def test_hex_column_check_rejects_a_bad_trusted_table(tmp_path):
    table = pa.table({"indicator_id": ["a"], "kind": ["md5"], "value": ["ZZ" * 16]})
    private, _ = generate_keypair(tmp_path / "keys")
    with pytest.raises(SnapshotError, match="invalid \\(or upper-case\\) hex in a 16-byte hash value"):
        build_snapshot(table, tmp_path / "db", private)


def test_names_in_hash_lists_are_one_kind_each():
    """A kind's name or alias (how other tools write it in hash lists) names exactly one kind, and
    the python-threatexchange name a kind exports as imports back as that kind."""
    seen: dict[str, str] = {}
    for name, signal in SIGNAL_TYPES.items():
        for spelling in (name, *signal.aliases):
            assert spelling == spelling.lower() and spelling not in seen, (spelling, seen.get(spelling))
            seen[spelling] = name
            assert kind_named(spelling.upper()) == name
        if signal.threatexchange:
            assert kind_named(signal.threatexchange) == name
    assert kind_named("url") is None and kind_named("") is None
