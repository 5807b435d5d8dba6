"""Indicator snapshots, models and report keys come from any filesystem Beam supports
(``apache_beam.io.filesystems.FileSystems``), not only local paths.

Python Beam registers no in-memory filesystem (``mem://`` is Java-only), so this module registers
a real Beam ``FileSystem`` plugin, ``testfs://``, that keeps its objects in a temp dir with
object-store semantics (no directories, listing by prefix: like ``gs://``) and records every
object opened. Loading through it proves the loaders use FileSystems; the same code then reads
``gs://`` on Dataflow or Flink workers."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)

from csadetect.config.profiles import FN_API_RUNNER

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "csadetect" / "models" / "reference"
SCHEME = "testfs"


class DirBackedFileSystem(FileSystem):
    """``testfs://a/b/c`` <-> ``ROOT/a/b/c``; objects only (``has_dirs`` is False)."""

    ROOT: str = ""
    opened: list = []  # URLs opened for reading, in order
    created: list = []  # URLs created (written), in order

    @classmethod
    def scheme(cls):
        return SCHEME

    # -------------------------------------------------------------- paths
    def _local(self, url: str) -> str:
        prefix = f"{SCHEME}://"
        if not url.startswith(prefix) or not self.ROOT:
            raise ValueError(f"not a {SCHEME} URL (or no ROOT): {url}")
        return os.path.join(self.ROOT, *url[len(prefix):].split("/"))

    def _url(self, local: str) -> str:
        return f"{SCHEME}://" + os.path.relpath(local, self.ROOT).replace(os.sep, "/")

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass  # an object store has no directories

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for dirpath, _, files in os.walk(self.ROOT):
            for name in files:
                local = os.path.join(dirpath, name)
                url = self._url(local)
                if url.startswith(dir_or_prefix):
                    st = os.stat(local)
                    yield FileMetadata(url, st.st_size, st.st_mtime)

    # -------------------------------------------------------------- objects
    @staticmethod
    def _wrap(fh, path, compression_type):
        if compression_type == CompressionTypes.AUTO:
            compression_type = CompressionTypes.detect_compression_type(path)
        return fh if compression_type == CompressionTypes.UNCOMPRESSED else CompressedFile(fh, compression_type)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        type(self).created.append(path)
        local = self._local(path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return self._wrap(open(local, "wb"), path, compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        type(self).opened.append(path)
        try:
            fh = open(self._local(path), "rb")
        except OSError as exc:
            raise BeamIOError("open failed", {path: exc}) from None
        return self._wrap(fh, path, compression_type)

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(self._local(dst)), exist_ok=True)
            shutil.copyfile(self._local(src), self._local(dst))

    def rename(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(self._local(dst)), exist_ok=True)
            os.replace(self._local(src), self._local(dst))

    def exists(self, path):
        return os.path.isfile(self._local(path))

    def size(self, path):
        return os.path.getsize(self._local(path))

    def last_updated(self, path):
        return os.path.getmtime(self._local(path))

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        for path in paths:
            local = self._local(path)
            if os.path.isfile(local):
                os.remove(local)
            else:
                raise BeamIOError("delete failed", {path: FileNotFoundError(path)})


def put(local, url: str) -> str:
    """Copy a local file or directory tree to ``url`` (through FileSystems)."""
    from apache_beam.io.filesystems import FileSystems

    local = Path(local)
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for f in files:
        rel = "" if f == local else f.relative_to(local).as_posix()
        with FileSystems.create(f"{url}/{rel}" if rel else url, compression_type=CompressionTypes.UNCOMPRESSED) as out:
            out.write(f.read_bytes())
    return url


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """The testfs root for this module; yields the bucket URL."""
    DirBackedFileSystem.ROOT = str(tmp_path_factory.mktemp("testfs"))
    yield f"{SCHEME}://bucket"
    DirBackedFileSystem.ROOT = ""


@pytest.fixture
def model_cache(tmp_path, monkeypatch):
    """Model copies go to this test's temp dir (csadetect.models.loader caches under tempfile.gettempdir())."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / "csadetect-models"


def test_the_plugin_is_a_beam_filesystem(bucket):
    from apache_beam.io.filesystems import FileSystems

    assert type(FileSystems.get_filesystem(f"{bucket}/x")) is DirBackedFileSystem
    with FileSystems.create(f"{bucket}/probe/a.txt") as fh:
        fh.write(b"hello")
    assert FileSystems.exists(f"{bucket}/probe/a.txt") and not FileSystems.exists(f"{bucket}/probe")
    assert [m.path for m in FileSystems.match([f"{bucket}/probe/*"])[0].metadata_list] == [f"{bucket}/probe/a.txt"]
    with FileSystems.open(f"{bucket}/probe/a.txt") as fh:
        assert fh.read() == b"hello"


# ------------------------------------------------------------------------- keys


def test_keys_through_filesystems(bucket, report_keys, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from csadetect.reports.crypto import ReportKeys
    from csadetect.config.settings import ReportSettings
    from csadetect.core import keys as signing

    signing.generate_keypair(tmp_path / "keys")
    put(tmp_path / "keys" / "public.pem", f"{bucket}/keys/public.pem")
    local = signing.load_public_key(tmp_path / "keys" / "public.pem")
    raw = lambda k: k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # noqa: E731
    for url in (f"{bucket}/keys/public.pem", f"{bucket}/keys", f"{bucket}/keys/"):  # a file, or a "directory" prefix
        DirBackedFileSystem.opened.clear()
        assert raw(signing.load_public_key(url)) == raw(local)
        assert DirBackedFileSystem.opened == [f"{bucket}/keys/public.pem"]
    with pytest.raises(signing.SigningError, match=f"public key not found: {bucket}/nope/public.pem$"):
        signing.load_public_key(f"{bucket}/nope/public.pem")
    with pytest.raises(signing.SigningError, match="^cannot read public key nosuchfs://b/public.pem: ValueError"):
        signing.load_public_key("nosuchfs://b/public.pem")  # no such Beam filesystem: one line, no traceback

    paths = report_keys["paths"]
    urls = {name: put(paths[name], f"{bucket}/report-keys/{Path(paths[name]).name}")
            for name in ("signing_key", "evidence_key", "centre_public_key")}
    DirBackedFileSystem.opened.clear()
    keys = ReportKeys.load(ReportSettings(**urls))
    assert set(DirBackedFileSystem.opened) == set(urls.values())
    expected = ReportKeys.load(ReportSettings(**{k: paths[k] for k in urls}))
    assert raw(keys.signing.public_key()) == raw(expected.signing.public_key())
    assert raw(keys.evidence.public_key()) == raw(expected.evidence.public_key())
    assert raw(keys.centre) == raw(expected.centre) and keys.seals_evidence


# -------------------------------------------------------------------- snapshots


def test_snapshot_written_and_loaded_through_filesystems(bucket, tmp_path):
    from csadetect.media import synth
    from csadetect.config.settings import IndicatorSettings, MatchSettings
    from csadetect.indicators.index import load_index
    from csadetect.indicators.rows import from_media
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import SnapshotError, build_snapshot, current_version
    from csadetect.indicators.live import LiveIndex

    pics = []
    for i in range(3):
        pics.append(tmp_path / f"k{i}.jpg")
        pics[-1].write_bytes(synth.jpeg_bytes(synth.synthetic_image(70 + i)))
    generate_keypair(tmp_path / "keys")
    public = put(tmp_path / "keys" / "public.pem", f"{bucket}/snapkeys/public.pem")
    db = f"{bucket}/snapdb"
    DirBackedFileSystem.created.clear()
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(staging))  # the local staging directory of the build
        manifest = build_snapshot(from_media([str(p) for p in pics[:2]], MatchSettings()), db,
                                  tmp_path / "keys" / "private.pem")
    assert current_version(db) == 1
    uploaded = [u for u in DirBackedFileSystem.created if u.startswith(f"{db}/versions/1/")]
    assert uploaded[-1] == f"{db}/versions/1/manifest.json"  # published once its manifest exists: the last object
    names = [*manifest["files"], "manifest.sig", "manifest.json"]
    assert sorted(uploaded) == sorted(f"{db}/versions/1/{n}" for n in names)
    assert not list(staging.iterdir())  # the staging copy is gone

    DirBackedFileSystem.opened.clear()
    live = LiveIndex(IndicatorSettings(path=db, public_key=public, poll_seconds=3600, cache_dir=str(tmp_path / "cache")),
                     MatchSettings())
    assert live.version == 1 and len(live.index) > 0
    assert {f"{db}/CURRENT", f"{db}/versions/1/manifest.json", f"{db}/versions/1/manifest.sig",
            f"{db}/versions/1/rows.arrow", f"{db}/versions/1/pdq_codes.npy", public} <= set(DirBackedFileSystem.opened)
    assert f"{db}/versions/1/indicators.parquet" not in DirBackedFileSystem.opened  # the index files are mapped, not rebuilt
    before = len(live.index)

    build_snapshot(from_media([str(pics[2])], MatchSettings()), db, tmp_path / "keys" / "private.pem", base="latest")
    assert live.refresh() and live.version == 2 and len(live.index) > before  # the delta, read through testfs

    # a tampered object is refused with one line
    bad = f"{bucket}/snapdb-bad"
    root = Path(DirBackedFileSystem.ROOT) / "bucket"
    shutil.copytree(root / "snapdb", root / "snapdb-bad")
    (root / "snapdb-bad" / "versions" / "1" / "rows.arrow").write_bytes(b"ARROW1 tampered")
    with pytest.raises(SnapshotError, match="checksum mismatch for rows.arrow in version 1"):
        load_index(bad, public, cache_dir=str(tmp_path / "cache"))


# ----------------------------------------------------------------------- models


def test_local_copy_of_any_scheme_is_atomic_and_cached(bucket, model_cache):
    from csadetect.models.loader import _local_copy, is_remote

    url = put(MODELS / "classifier", f"{bucket}/copy/classifier")
    assert is_remote(url) and is_remote("gs://b/m") and not is_remote(str(MODELS)) and not is_remote(None)
    results, errors = [], []

    def fetch():
        try:
            results.append(_local_copy(url))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]  # as concurrent worker processes would
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    local = Path(results[0])
    assert local.name == "classifier" and local.parent.parent == model_cache
    for f in (MODELS / "classifier").iterdir():
        if f.is_file():
            assert (local / f.name).read_bytes() == f.read_bytes()
    assert [p.name for p in model_cache.iterdir() if p.name != ".lock"] == [local.parent.name]  # no staging dir left behind

    DirBackedFileSystem.opened.clear()
    assert _local_copy(url) == str(local) and DirBackedFileSystem.opened == []  # cached: nothing read again
    single = put(MODELS / "classifier" / "metadata.json", f"{bucket}/copy/one/metadata.json")
    assert Path(_local_copy(single)).read_bytes() == (MODELS / "classifier" / "metadata.json").read_bytes()


def test_models_load_through_filesystems(bucket, model_cache):
    from csadetect.config.settings import load_settings
    from csadetect.models import ModelError
    from csadetect.models.classifier import NewMaterialClassifier
    from csadetect.models.embedding import EmbeddingModel, EmbeddingSpec
    from csadetect.models.grooming import GroomingModel
    from csadetect.pipelines.detect import check_image_models, resolve_models
    from csadetect.transforms.classify import NewMaterialPolicy

    urls = {name: put(MODELS / name, f"{bucket}/models/{name}") for name in ("embedding", "classifier", "grooming")}
    settings = load_settings(overrides={"embedding": {"model": urls["embedding"]},
                                        "new_material": {"model": urls["classifier"]},
                                        "grooming": {"model": urls["grooming"]}})
    DirBackedFileSystem.opened.clear()
    spec = EmbeddingSpec.resolve(settings.embedding)
    policy = NewMaterialPolicy.resolve(settings.new_material)
    # the URL itself travels to the workers (a launcher's cache path would not exist there)
    assert spec.path == urls["embedding"] and policy.model_path == urls["classifier"]
    assert spec.version == EmbeddingSpec.resolve(load_settings().embedding).version
    models = resolve_models(settings)
    check_image_models(settings, models)
    assert EmbeddingModel.load(spec.path).version == spec.version
    assert NewMaterialClassifier.load(policy.model_path).version == policy.version
    assert GroomingModel.load(urls["grooming"]).version == GroomingModel.load().version
    for name in ("embedding", "classifier", "grooming"):
        assert f"{urls[name]}/model.keras" in DirBackedFileSystem.opened

    with pytest.raises(ModelError, match=f"model not found: {bucket}/models/nope"):
        GroomingModel.load(f"{bucket}/models/nope")
    with pytest.raises(ModelError, match="nosuchfs://b/m cannot be listed"):
        NewMaterialClassifier.load("nosuchfs://b/m")


# --------------------------------------------------------------------- pipeline


@pytest.mark.slow
def test_pipeline_reads_indicators_models_keys_and_events_through_filesystems(bucket, report_keys, model_cache,
                                                                              tmp_path):
    """The batch graph, with the snapshot, its key, the three models, the report keys and the
    events all on testfs://; the start-up checks too."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from csadetect.reports import crypto
    from csadetect.config.settings import load_settings
    from csadetect.pipelines.detect import (Source, build_pipeline, check_grooming_model, check_image_models,
                                  check_indicators, check_report_keys, outcome_counts, resolve_models)
    from tests.test_multiprocess import build_world, outputs

    world = build_world(tmp_path / "world", db=f"{bucket}/pipeline/db")
    public = put(world["public_key"], f"{bucket}/pipeline/keys/public.pem")
    events = put(world["events"], f"{bucket}/pipeline/events/events.jsonl")
    models = {name: put(MODELS / name, f"{bucket}/pipeline/models/{name}") for name in ("embedding", "classifier", "grooming")}
    paths = report_keys["paths"]
    keys = {name: put(paths[name], f"{bucket}/pipeline/report-keys/{Path(paths[name]).name}")
            for name in ("signing_key", "evidence_key", "centre_public_key")}
    out = tmp_path / "out"
    settings = load_settings(overrides={
        "indicators": {"path": world["db"], "public_key": public},
        "embedding": {"model": models["embedding"]}, "new_material": {"model": models["classifier"]},
        "grooming": {"model": models["grooming"]}, "reports": keys,
        "sinks": {"report_dir": str(out / "reports"), "review_dir": str(out / "review"),
                  "dead_letter_dir": str(out / "dead")},
        "stores": {"stats_dir": None},
        "content": {"allowed_uri_prefixes": [str(world["work"]) + "/"]},  # the by-uri event's folder
    })
    DirBackedFileSystem.opened.clear()
    assert check_indicators(settings).version == 1
    resolved = resolve_models(settings)
    check_image_models(settings, resolved)
    check_grooming_model(settings)
    check_report_keys(settings)

    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=events).validate(), models=resolved)
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["by-uri", "exact", "letterbox"]))
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["received"] == counts["hit"] + counts["non_hit"] + counts["dead_lettered"]

    got = outputs(out)
    assert sorted(r["detector"] for r in got["review"].values()) == [
        "grooming-text", "known-embedding", "new-material-classifier", "new-material-classifier"]
    for report in got["reports"].values():
        crypto.verify_report(report, paths["provider_public_key"])
        crypto.open_evidence(report, paths["centre_private_key"])
    opened = set(DirBackedFileSystem.opened)
    wanted = {public, events, f"{world['db']}/CURRENT", f"{world['db']}/versions/1/manifest.json",
              *keys.values(), *(f"{m}/model.keras" for m in models.values())}
    assert wanted <= opened, sorted(wanted - opened)
