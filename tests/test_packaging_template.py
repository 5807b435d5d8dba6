"""The Flex Template in ``deploy/dataflow/``, offline: the template's ``metadata.json`` against
``DetectOptions`` (parsed by Beam), its regexes against good and bad examples, the Dockerfiles'
pins against ``requirements.txt`` and the Python of setup.py, the Cloud Build config wiring the
worker image into the launcher, and the launcher entry point ``deploy/dataflow/main.py``.

The package the images install (sdist, wheel, clean venv) is tested in test_packaging.py; what
both use is in packaging_helpers.py.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.packaging_helpers import (DEPLOY, LAUNCHER_DOCKERFILE, METADATA, PACKAGE_ROOTS, REPO, SDIST_EXTRAS,
                                     WORKER_DOCKERFILE, _copied, _envs, _runs, parse_dockerfile, requirement_pins)


# ------------------------------------------------------------------- Flex Template metadata


def detect_actions() -> dict[str, argparse.Action]:
    from csadetect.pipelines.detect import DetectOptions

    parser = argparse.ArgumentParser(add_help=False)
    DetectOptions._add_argparse_args(parser)
    return {a.dest: a for a in parser._actions if a.option_strings}


def metadata() -> dict:
    return json.loads(METADATA.read_text(encoding="utf-8"))


# Options of DetectOptions the streaming template does not expose, and why.
NOT_TEMPLATE_PARAMETERS = {
    "input_glob": "batch input from files; the template reads a Pub/Sub subscription",
    "input_media_glob": "batch input from media files; the template reads a Pub/Sub subscription",
    "read_via": "Flink/portable runners (xlang Pub/Sub, Kafka); Dataflow reads Pub/Sub natively",
    "kafka_bootstrap_servers": "Kafka input (--read_via kafka); the template reads a Pub/Sub subscription",
    "kafka_topic": "Kafka input (--read_via kafka); the template reads a Pub/Sub subscription",
    "kafka_consumer_config": "Kafka input (--read_via kafka); the template reads a Pub/Sub subscription",
    "kafka_commit_offsets": "Kafka input (--read_via kafka); the template reads a Pub/Sub subscription",
    "expansion_service": "Java expansion service for xlang reads on portable runners; not used on Dataflow",
    "run_id": "each launch gets a new run id; a template launch must never reuse one",
}

PARAM_TYPES = {"TEXT", "GCS_READ_FILE", "GCS_READ_FOLDER", "GCS_WRITE_FILE", "GCS_WRITE_FOLDER",
               "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION"}

_SUBSCRIPTION = (
    ["projects/my-project/subscriptions/uploads", "projects/example.com:csa-prod/subscriptions/csa.verdicts_v2~x"],
    ["projects/p/subscriptions/uploads", "projects/my-project/topics/uploads", "uploads",
     "projects/my-project/subscriptions/up loads", "projects/My-Project/subscriptions/uploads",
     "projects/my-project/subscriptions/1uploads", "projects/my-project/subscriptions/uploads/extra",
     "projects/my-project/subscriptions/uploads\n", ""],
)
_TOPIC = (
    ["projects/my-project/topics/csa-reports", "projects/example.com:csa-prod/topics/csa.review_v2"],
    ["projects/p/topics/reports", "projects/my-project/subscriptions/reports", "csa-reports",
     "projects/my-project/topics/", "projects/my-project/topics/re ports", "//pubsub/projects/my-project/topics/t", ""],
)
_GCS_FOLDER = (
    ["gs://my-bucket/csadetect/review", "gs://csa_prod.example.org/stats/", "gs://my-bucket"],
    ["/var/csadetect/review", "out/review", "gs://My-Bucket/review", "gs:/my-bucket/review", "s3://my-bucket/review",
     "gs://-bucket/review", "gs://my-bucket/with space", "gs://b/review", ""],
)
_INDICATORS = (
    ["gs://my-bucket/indicators", "/opt/csadetect/indicators"],
    ["indicators", ".demo/indicators", "gs://my bucket/indicators", "https://example.org/indicators", ""],
)
_KEY_PATH = (  # read by the workers (csadetect/core/keys.py): Cloud Storage or a path inside the worker image
    ["gs://my-keys-bucket/provider/private.pem", "gs://my-keys-bucket/provider", "/etc/csadetect/keys/provider",
     "/secrets/centre_public.pem"],
    ["keys/private.pem", ".demo/provider-keys/private.pem", "/etc/csadetect/my key.pem",
     "https://example.org/keys/private.pem", "gs://Keys/private.pem", ""],
)
_CONFIG = (
    ["gs://my-bucket/csadetect/config.yaml", "/template/config/default.yaml", "/etc/csadetect/prod.yml"],
    ["config.yaml", "csadetect/config/default.yaml", "gs://my-bucket/config.json", "/etc/csadetect/", "gs://my-bucket/.yaml",
     "s3://my-bucket/config.yaml", ""],
)
_WINDOW = (["60", "1", "3600"], ["0", "-5", "1.5", "60s", "0060", "1e3", ""])
_POLL = (["300", "0.5", "0", "12.25"], ["-1", "1e3", "five", ".5", "5.", ""])

REGEX_EXAMPLES = {
    "input_subscription": _SUBSCRIPTION,
    "verdict_subscription": _SUBSCRIPTION,
    "report_topic": _TOPIC,
    "review_topic": _TOPIC,
    "dead_letter_topic": _TOPIC,
    "report_dir": _GCS_FOLDER,
    "review_dir": _GCS_FOLDER,
    "dead_letter_dir": _GCS_FOLDER,
    "stats_dir": _GCS_FOLDER,
    "indicators": _INDICATORS,
    "public_key": _KEY_PATH,
    "signing_key": _KEY_PATH,
    "evidence_key": _KEY_PATH,
    "centre_public_key": _KEY_PATH,
    "config": _CONFIG,
    "window_seconds": _WINDOW,
    "poll_seconds": _POLL,
}


def test_metadata_has_the_required_keys():
    meta = metadata()
    assert isinstance(meta.get("name"), str) and re.fullmatch(r"[a-z][-a-z0-9]*", meta["name"])
    assert isinstance(meta.get("description"), str) and len(meta["description"]) > 40
    assert meta.get("streaming") is True  # Pub/Sub in, Pub/Sub out
    params = meta["parameters"]
    assert isinstance(params, list) and params
    names = [p["name"] for p in params]
    assert len(names) == len(set(names)), "duplicate parameter names"
    for p in params:
        assert set(p) >= {"name", "label", "helpText", "isOptional", "regexes"}, p.get("name")
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p["name"]), p["name"]
        assert isinstance(p["label"], str) and p["label"].strip(), p["name"]
        assert isinstance(p["helpText"], str) and len(p["helpText"]) > 20, p["name"]
        assert isinstance(p["isOptional"], bool), p["name"]
        assert isinstance(p["regexes"], list) and p["regexes"] and all(isinstance(r, str) for r in p["regexes"])
        assert p.get("paramType", "TEXT") in PARAM_TYPES, p["name"]
    required = {p["name"] for p in params if not p["isOptional"]}
    assert required == {"input_subscription"}


def test_metadata_parameters_are_detect_options():
    """Every parameter is an option of DetectOptions, parsed the way the launcher's arguments
    are (Beam's PipelineOptions), and every option is a parameter unless excluded with a reason."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from csadetect.pipelines.detect import DetectOptions

    actions = detect_actions()
    params = metadata()["parameters"]
    names = {p["name"] for p in params}
    assert names - set(actions) == set(), "not options of csadetect.pipelines.detect.DetectOptions"
    uncovered = set(actions) - names - set(NOT_TEMPLATE_PARAMETERS)
    assert uncovered == set(), (f"DetectOptions options without a Flex Template parameter: {sorted(uncovered)}; "
                                "add them to deploy/dataflow/metadata.json or NOT_TEMPLATE_PARAMETERS")
    values = {p["name"]: REGEX_EXAMPLES[p["name"]][0][0] for p in params}
    opts = PipelineOptions([f"--{k}={v}" for k, v in values.items()]).view_as(DetectOptions)
    for name, value in values.items():
        convert = actions[name].type or str
        assert getattr(opts, name) == convert(value), name


def _lookaround(regex: str) -> bool:
    return bool(re.search(r"\(\?[=!<]|\\[1-9]", regex))


def test_metadata_regexes_accept_good_and_reject_bad_examples():
    params = metadata()["parameters"]
    assert {p["name"] for p in params} <= set(REGEX_EXAMPLES), "give examples for every parameter"
    for p in params:
        compiled = []
        for regex in p["regexes"]:
            assert regex.startswith("^") and regex.endswith("$"), (p["name"], regex)
            assert not _lookaround(regex), f"{p['name']}: keep to syntax every regex engine has (no lookaround)"
            compiled.append(re.compile(regex))
        good, bad = REGEX_EXAMPLES[p["name"]]
        for value in good:
            assert all(r.fullmatch(value) for r in compiled), f"{p['name']} rejects good {value!r}"
        for value in bad:
            assert not all(r.fullmatch(value) for r in compiled), f"{p['name']} accepts bad {value!r}"


# ------------------------------------------------------------------------------ Dockerfiles


@pytest.mark.parametrize("path", [WORKER_DOCKERFILE, LAUNCHER_DOCKERFILE], ids=["worker", "launcher"])
def test_dockerfiles_pin_beam_tensorflow_and_python_of_requirements(path):
    pins = requirement_pins()
    beam, tf = pins["apache-beam"], pins["tensorflow"]
    df = parse_dockerfile(path)
    assert len(df["from"]) == 1, "one build stage"
    assert df["args"].get("BEAM_VERSION") == beam and df["args"].get("TENSORFLOW_VERSION") == tf, df["args"]
    image = df["from"][0]
    if path == WORKER_DOCKERFILE:
        assert image == f"apache/beam_python3.11_sdk:{beam}"
    else:
        assert image.startswith("gcr.io/dataflow-templates-base/python311-template-launcher-base:"), image
    # no other hard-coded version anywhere in the file (comments included)
    text = path.read_text(encoding="utf-8")
    for m in re.finditer(r"apache[-_]beam(?:\[[^\]]*\])?==([\w.]+)|beam_python[\d.]+_sdk:([\d][\w.]*)", text):
        assert (m.group(1) or m.group(2)) == beam, m.group(0)
    for m in re.finditer(r"tensorflow==([\w.]+)", text):
        assert m.group(1) == tf, m.group(0)
    for m in re.finditer(r"python(\d)\.?(\d+)(?:_sdk|-template-launcher-base)", text):
        assert (m.group(1), m.group(2)) == ("3", "11"), m.group(0)
    runs = _runs(df)
    assert any(re.search(r"pip install .*-r \S*requirements\.txt", r) for r in runs), "installs requirements.txt"
    assert any("--no-deps" in r and "pip install" in r for r in runs), "installs the package"
    # the build fails when the installed versions drift from the pins
    assert any("'${BEAM_VERSION}'" in r and "'${TENSORFLOW_VERSION}'" in r and "(3, 11)" in r for r in runs)
    ffmpeg_dev = {"libavcodec-dev", "libavformat-dev", "libavfilter-dev", "libavdevice-dev", "libswresample-dev",
                  "libswscale-dev", "libavutil-dev"}
    assert any("apt-get install" in r and ffmpeg_dev <= set(r.split()) for r in runs), "FFmpeg dev packages for vpdq"
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert ffmpeg_dev <= set(re.search(r"^FFMPEG_DEV\s*=\s*(.*)$", makefile, re.M).group(1).split())
    copied = {s.rstrip("/") for sources, _ in _copied(df) for s in sources}
    missing = (set(setup_packages_roots()) | set(SDIST_EXTRAS)) - copied
    assert missing == set(), f"{path.name} does not copy {sorted(missing)}"


def setup_packages_roots() -> list[str]:
    return sorted(PACKAGE_ROOTS)


def test_python_version_of_setup_matches_the_images():
    specifiers = pytest.importorskip("packaging.specifiers")
    m = re.search(r"python_requires\s*=\s*['\"]([^'\"]+)['\"]", (REPO / "setup.py").read_text(encoding="utf-8"))
    spec = specifiers.SpecifierSet(m.group(1))
    assert "3.11.7" in spec and "3.12.0" not in spec and "3.10.9" not in spec


def test_launcher_runs_the_entry_point_with_the_setup_file_and_worker_image():
    df = parse_dockerfile(LAUNCHER_DOCKERFILE)
    env = _envs(df)
    py_file, setup_file = env["FLEX_TEMPLATE_PYTHON_PY_FILE"], env["FLEX_TEMPLATE_PYTHON_SETUP_FILE"]
    assert setup_file.endswith("/setup.py")
    dests = {}
    for sources, dest in _copied(df):
        for s in sources:
            dests[s] = dest
    assert dests.get("deploy/dataflow/main.py") == py_file
    root = setup_file.rsplit("/", 1)[0]
    for name in setup_packages_roots():
        assert dests.get(name) == f"{root}/{name}", f"{name} is not copied next to the setup file"
    assert "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in env  # pre-installed in both images
    launcher = load_launcher()
    assert env[launcher.WORKER_IMAGE_ENV] == "${WORKER_IMAGE}"
    assert "WORKER_IMAGE" in df["args"]
    assert any('test -n "${WORKER_IMAGE}"' in r for r in _runs(df)), "the build refuses an empty WORKER_IMAGE"


def test_worker_installs_the_staged_sdist_without_pypi():
    """Beam's boot script runs a plain `pip install workflow.tar.gz` for --setup_file; with build
    isolation pip would fetch setuptools from PyPI, which workers without public IPs cannot reach.
    The slow test builds the sdist with these settings and --no-index."""
    env = _envs(parse_dockerfile(WORKER_DOCKERFILE))
    assert env.get("PIP_NO_BUILD_ISOLATION") == "false"  # pip reads it inverted: build isolation off
    assert "setuptools" in requirement_pins()


def test_cloudbuild_builds_both_images_and_wires_the_worker_into_the_launcher():
    yaml = pytest.importorskip("yaml")
    conf = yaml.safe_load((DEPLOY / "cloudbuild.yaml").read_text(encoding="utf-8"))
    builds = {}
    for step in conf["steps"]:
        args = step["args"]
        assert args[0] == "build"
        dockerfile = args[args.index("-f") + 1]
        assert (REPO / dockerfile).is_file(), dockerfile
        builds[Path(dockerfile).name] = args
    worker_tag = builds["Dockerfile.worker"][builds["Dockerfile.worker"].index("-t") + 1]
    launcher = builds["Dockerfile.launcher"]
    assert f"WORKER_IMAGE={worker_tag}" in launcher
    assert set(conf["images"]) == {worker_tag, launcher[launcher.index("-t") + 1]}


# ------------------------------------------------------------------------ launcher entry point


def load_launcher():
    spec = importlib.util.spec_from_file_location("csadetect_flex_main", DEPLOY / "main.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launch_argv_adds_the_dataflow_defaults_and_keeps_explicit_options():
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, WorkerOptions

    from csadetect.pipelines.detect import DetectOptions

    launcher = load_launcher()
    image = "europe-west3-docker.pkg.dev/my-project/csadetect/csadetect-worker:0.1.0"
    given = ["--input_subscription=projects/my-project/subscriptions/uploads", "--window_seconds=120"]
    argv = launcher.launch_argv(given, env={launcher.WORKER_IMAGE_ENV: image})
    assert argv[: len(given)] == given
    options = PipelineOptions(argv)
    std = options.view_as(StandardOptions)
    assert std.runner == "DataflowRunner" and std.streaming is True and std.no_wait_until_finish is True
    assert options.view_as(WorkerOptions).sdk_container_image == image
    detect = options.view_as(DetectOptions)
    assert detect.input_subscription == "projects/my-project/subscriptions/uploads" and detect.window_seconds == 120

    explicit = given + ["--runner=DirectRunner", "--sdk_container_image=other:1", "--streaming",
                        "--no_wait_until_finish"]
    assert launcher.launch_argv(explicit, env={launcher.WORKER_IMAGE_ENV: image}) == explicit
    assert not any(a.startswith("--sdk_container_image") for a in launcher.launch_argv(given, env={}))


def test_remote_config_is_copied_to_a_local_file(tmp_path):
    import io

    launcher = load_launcher()
    store = {"gs://my-bucket/csadetect/config.yaml": b"orders: []\n"}
    opener = lambda url: io.BytesIO(store[url])  # noqa: E731
    argv = ["--streaming", "--config=gs://my-bucket/csadetect/config.yaml"]
    out = launcher.localize_config(argv, opener, str(tmp_path))
    local = out[1].split("=", 1)[1]
    assert out[0] == "--streaming" and Path(local).parent == tmp_path and Path(local).read_bytes() == b"orders: []\n"
    out = launcher.localize_config(["--config", "gs://my-bucket/csadetect/config.yaml"], opener, str(tmp_path))
    assert out[0] == "--config" and Path(out[1]).read_bytes() == b"orders: []\n"
    local_argv = ["--config=/template/config/default.yaml", "--streaming"]
    assert launcher.localize_config(local_argv, opener, str(tmp_path)) == local_argv
    assert launcher.localize_config(["--streaming"], opener, str(tmp_path)) == ["--streaming"]
