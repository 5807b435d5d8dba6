"""Packaging for Dataflow workers (``--setup_file ./setup.py``) and the Flex Template in
``deploy/dataflow/``.

Fast: the template's ``metadata.json`` against ``DetectOptions`` (parsed by Beam), its regexes
against good and bad examples, the Dockerfiles' pins against ``requirements.txt``, the launcher
entry point ``deploy/dataflow/main.py``, and the file-list checks the slow tests rely on.

Slow: build the sdist (as Beam's stager does for ``--setup_file``) and the wheel from a copy of the
source tree, check that both hold every module and every data file of the packages, build a wheel
from the sdist (what Dataflow workers install) and install the wheel into a clean venv that sees
the third-party packages of this interpreter but not the project, then import every module and run
``python -m csadetect.pipelines.detect --help`` there.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "dataflow"
METADATA = DEPLOY / "metadata.json"
WORKER_DOCKERFILE = DEPLOY / "Dockerfile.worker"
LAUNCHER_DOCKERFILE = DEPLOY / "Dockerfile.launcher"

# The packages of setup.py (top-level names); every module and every other file under them ships.
PACKAGE_ROOTS = ("csadetect",)  # one import name: nothing else goes into site-packages
# Top-level folders of the repository that are not shipped: development tools only.
NOT_IN_WHEEL = ("training", "benchmarks", "tests", "deploy")
# Import names other projects use too; an installed csadetect must neither shadow them nor be
# broken by them (docs/architecture.md, "Packaging").
COMMON_NAMES = ("models", "config", "transforms", "pipelines", "indicators", "training")
# What the sdist needs besides the packages to build again (setup.py reads the first two).
SDIST_EXTRAS = ("requirements.txt", "README.md", "setup.py", "MANIFEST.in")
# Files under the package roots that are deliberately not shipped (none today).
NOT_SHIPPED: frozenset = frozenset()


# ----------------------------------------------------------------------------------- file lists


def project_files(root: Path = REPO) -> list[str]:
    """Repository-relative POSIX paths of the files a clone has: git's tracked files plus untracked
    ones it does not ignore (new work counts); without git, a walk that skips build outputs."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True, timeout=60,
        ).stdout
        names = {n for n in out.decode("utf-8", "surrogateescape").split("\0") if n}
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "build", "dist", "out", "__pycache__", ".pytest_cache", "test-artifacts", ".demo"}
        names = set()
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root)
            dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")
                           and (rel / d).as_posix() != "benchmarks/.data"]
            names.update((rel / f).as_posix() for f in filenames)
    return sorted(n for n in names if (root / n).is_file() and not n.endswith((".pyc", ".pyo")))


def expected_package_files(files: Iterable[str]) -> tuple[set[str], set[str]]:
    """(modules, data files) of the packages, as paths inside a wheel (``pkg/sub/name``)."""
    modules, data = set(), set()
    for name in files:
        parts = name.split("/")
        if len(parts) < 2 or parts[0] not in PACKAGE_ROOTS or "__pycache__" in parts or name in NOT_SHIPPED:
            continue
        (modules if name.endswith(".py") else data).add(name)
    return modules, data


def module_name(path: str) -> str:
    parts = path[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def missing_from(archive_names: Iterable[str], expected: Iterable[str], strip_top: bool = False) -> list[str]:
    """The expected paths an archive listing lacks; ``strip_top`` drops the sdist's
    ``name-version/`` prefix."""
    names = set()
    for n in archive_names:
        if strip_top:
            n = n.split("/", 1)[1] if "/" in n else ""
        names.add(n)
    return sorted(set(expected) - names)


def test_project_files_cover_every_kind_of_runtime_data():
    modules, data = expected_package_files(project_files())
    for pkg in PACKAGE_ROOTS:
        assert f"{pkg}/__init__.py" in modules, pkg
    assert {"csadetect/console/__init__.py", "csadetect/pipelines/detect.py", "csadetect/pipelines/feedback.py"} <= modules
    prefixes = ("csadetect/config/", "csadetect/reports/schemas/", "csadetect/compliance/templates/", "csadetect/console/templates/",
                "csadetect/console/static/", "csadetect/models/reference/grooming/", "csadetect/models/reference/embedding/",
                "csadetect/models/reference/classifier/", "csadetect/models/cards/")
    for prefix in prefixes:
        assert any(n.startswith(prefix) for n in data), f"no data file under {prefix}"
    assert {"csadetect/config/default.yaml", "csadetect/reports/schemas/report.schema.json",
            "csadetect/models/reference/grooming/model.keras", "csadetect/models/cards/grooming.md"} <= data


def test_missing_module_or_data_file_is_reported():
    """The check the slow tests apply to the real wheel and sdist, on a listing with one module
    and one data file filtered out."""
    modules, data = expected_package_files(project_files())
    expected = modules | data
    dropped = {"csadetect/pipelines/detect.py", "csadetect/models/reference/grooming/model.keras"}
    listing = sorted(expected - dropped) + ["csadetect-0.1.0.dist-info/RECORD", "csadetect-0.1.0.dist-info/METADATA"]
    assert missing_from(listing, expected) == sorted(dropped)
    assert missing_from(sorted(expected) + ["csadetect-0.1.0.dist-info/RECORD"], expected) == []
    sdist = ["csadetect-0.1.0/" + n for n in listing] + ["csadetect-0.1.0/PKG-INFO"]
    assert missing_from(sdist, expected, strip_top=True) == sorted(dropped)
    # a file moved to the wrong place is missing too
    moved = [n.replace("csadetect/reports/schemas/", "schemas/") for n in sorted(expected)]
    assert "csadetect/reports/schemas/report.schema.json" in missing_from(moved, expected)
    assert module_name("csadetect/pipelines/detect.py") == "csadetect.pipelines.detect"
    assert module_name("csadetect/console/__init__.py") == "csadetect.console"


def package_dirs_without_init(files: Iterable[str]) -> list[str]:
    """Directories under the package roots that hold modules but no ``__init__.py``: setup.py's
    ``find_packages`` would leave their modules out of the wheel."""
    modules = expected_package_files(files)[0]
    dirs = {m.rsplit("/", 1)[0] for m in modules}
    return sorted(d for d in dirs if f"{d}/__init__.py" not in modules)


def test_every_package_directory_has_an_init():
    assert package_dirs_without_init(project_files()) == []
    assert package_dirs_without_init(["csadetect/__init__.py", "csadetect/x/a.py"]) == ["csadetect/x"]


def test_setup_installs_one_import_name():
    """setup.py finds every package under ``csadetect`` and nothing else."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup")
    packages = next(kw.value for kw in call.keywords if kw.arg == "packages")
    assert ast.unparse(packages) == "find_packages(include=['csadetect', 'csadetect.*'])"
    found = {module_name(n) for n in expected_package_files(project_files())[0] if n.endswith("/__init__.py")}
    assert {p.split(".")[0] for p in found} == set(PACKAGE_ROOTS)


# ------------------------------------------------------------------------- clean venv helpers


def _mentions_project(path: Path, root: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    needles = {str(root), str(root.resolve()), "csadetect", "__editable__"}
    return any(n in text for n in needles)


def leaks_project(entry: Path, root: Path = REPO) -> bool:
    """Whether a site-packages entry would put the project (rather than its dependencies) on the
    path: our top-level packages, our dist-info/egg-info/egg-link, setuptools' editable ``.pth``
    and finder, or any ``.pth``/``.egg-link`` that points at the repository."""
    name = entry.name
    low = name.lower()
    if name in PACKAGE_ROOTS or name == "__pycache__":
        return True
    if low.startswith(("csadetect-", "csadetect.", "__editable__")):
        return True
    if low.endswith((".pth", ".egg-link")):
        return _mentions_project(entry, root)
    return False


def make_deps_overlay(site_dirs: Sequence[Path], dest: Path, root: Path = REPO) -> list[Path]:
    """For each site-packages directory, a directory of symlinks to its entries minus those that
    would leak the project (see :func:`leaks_project`). Added with ``site.addsitedir``, the
    overlay's own ``.pth`` files (namespace packages, distutils shim) still run."""
    overlays = []
    for i, sdir in enumerate(site_dirs):
        out = dest / f"site{i}"
        out.mkdir(parents=True)
        for entry in sorted(Path(sdir).iterdir()):
            if not leaks_project(entry, root):
                (out / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        overlays.append(out)
    return overlays


def third_party_site_dirs() -> list[Path]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    seen, out = set(), []
    for d in dirs:
        p = Path(d)
        if p.is_dir() and p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def test_deps_overlay_hides_an_editable_install(tmp_path):
    """An editable install of the project in this interpreter (``make install`` does ``pip
    install -e .``) must not reach the clean venv."""
    sdir = tmp_path / "site-packages"
    sdir.mkdir()
    for d in ("numpy", "google", "apache_beam", "numpy-2.4.6.dist-info", "models", "config",
              "csadetect-0.1.0.dist-info", "csadetect.egg-info", "__pycache__"):
        (sdir / d).mkdir()
    (sdir / "__editable__.csadetect-0.1.0.pth").write_text(
        "import __editable___csadetect_0_1_0_finder; __editable___csadetect_0_1_0_finder.install()\n")
    (sdir / "__editable___csadetect_0_1_0_finder.py").write_text("MAPPING = {}\n")
    (sdir / "easy-install.pth").write_text(f"{REPO}\n")
    (sdir / "csadetect.egg-link").write_text(f"{REPO}\n.\n")
    (sdir / "distutils-precedence.pth").write_text("import os; var = 'SETUPTOOLS_USE_DISTUTILS'\n")
    (sdir / "google_cloud_nspkg.pth").write_text("import sys, types, os;p = os.path.join('google')\n")
    (sdir / "six.py").write_text("")
    (overlay,) = make_deps_overlay([sdir], tmp_path / "overlay")
    # other distributions' top-level ``models`` and ``config`` are theirs, not ours: they stay
    assert sorted(p.name for p in overlay.iterdir()) == sorted(
        ["numpy", "google", "apache_beam", "numpy-2.4.6.dist-info", "models", "config", "distutils-precedence.pth",
         "google_cloud_nspkg.pth", "six.py"])
    assert all(p.is_symlink() for p in overlay.iterdir())


def clean_env(extra_path: Path | None = None) -> dict:
    """This environment minus everything that could put the repository on the path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX", "PIP_USER")}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="2",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_NO_INDEX="1")
    if extra_path is not None:
        env["PATH"] = f"{extra_path}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: Sequence, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env if env is not None else clean_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}")
    return proc


IMPORT_CHECK = r"""
import importlib, importlib.metadata, importlib.util, json, sys, sysconfig, traceback
from pathlib import Path

result = {"files": {}, "errors": {}, "data": {}, "sys_path": list(sys.path),
          "meta_path": [repr(f) for f in sys.meta_path], "purelib": sysconfig.get_paths()["purelib"]}
for name in json.loads(sys.argv[1]):
    try:
        if name.rsplit(".", 1)[-1] == "__main__":  # importing it would run the CLI
            result["files"][name] = importlib.util.find_spec(name).origin
        else:
            result["files"][name] = importlib.import_module(name).__file__
    except BaseException:
        result["errors"][name] = traceback.format_exc(limit=4)
try:  # the code finds its data where it looks for it at run time
    from importlib import resources
    import csadetect.reports.ncmec, csadetect.compliance.transparency, csadetect.console.app as console_app
    from csadetect.config.settings import DEFAULT_CONFIG, load_settings
    from csadetect.pipelines.detect import resolve_models
    models = resolve_models(load_settings())  # the reference models' metadata, no TensorFlow
    result["data"] = {
        "default_config": str(DEFAULT_CONFIG),
        "schema": str(resources.files("csadetect.reports").joinpath("schemas/report.schema.json")),
        "xsd": str(csadetect.reports.ncmec.XSD_PATH),
        "transparency_template": str(csadetect.compliance.transparency.TEMPLATES / "transparency.html.j2"),
        "console_templates": str(console_app.HERE / "templates" / "queue.html"),
        "console_static": str(console_app.HERE / "static" / "console.css"),
        "embedding_model": str(models.embedding.path) if models.embedding else None,
        "classifier_model": str(models.new_material.model_path) if models.new_material else None,
    }
    result["data_exists"] = {k: v is not None and Path(v).exists() for k, v in result["data"].items()}
except BaseException:
    result["errors"]["<runtime data>"] = traceback.format_exc(limit=6)
result["dist"] = str(importlib.metadata.distribution("csadetect").locate_file(""))
print("RESULT " + json.dumps(result))
"""


# ------------------------------------------------------------------------------ slow: build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """sdist, wheel, wheel built from the sdist, and a clean venv with the wheel installed."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    for name in project_files():  # a copy: no stale build/ or egg-info of the checkout leaks in
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    build_env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_NO_INDEX="1")

    # the sdist exactly as Beam's stager builds it for --setup_file (stager._build_setup_package)
    dist = tmp / "dist"
    if importlib.util.find_spec("build") is not None:
        run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--outdir", dist, src], src, build_env)
    else:
        run([sys.executable, "setup.py", "sdist", "--dist-dir", dist], src, build_env)
    (sdist,) = dist.glob("*.tar.gz")

    wheels = tmp / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, src],
        tmp, build_env)
    (wheel,) = wheels.glob("*.whl")

    # the sdist built the way Beam's boot script installs it on a worker (`pip install
    # workflow.tar.gz`), offline, with the worker image's pip settings (PIP_NO_BUILD_ISOLATION)
    worker_env = _envs(parse_dockerfile(WORKER_DOCKERFILE))
    sdist_env = dict(build_env, **{k: v for k, v in worker_env.items() if k.startswith("PIP_")})
    wheels2 = tmp / "wheels-from-sdist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "-w", wheels2, sdist], tmp, sdist_env)
    (wheel2,) = wheels2.glob("*.whl")

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    py = venv / "bin" / "python"
    purelib = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip())
    run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--no-compile", wheel],
        tmp, build_env)
    overlays = make_deps_overlay(third_party_site_dirs(), tmp / "deps")
    (purelib / "zz_csadetect_test_deps.pth").write_text(
        "".join(f"import site; site.addsitedir({str(o)!r})\n" for o in overlays))
    work = tmp / "cwd"
    work.mkdir()
    return {"sdist": sdist, "wheel": wheel, "wheel_from_sdist": wheel2, "venv": venv, "python": py,
            "purelib": purelib.resolve(), "cwd": work}


def _wheel_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


@pytest.mark.slow
def test_sdist_holds_every_module_and_data_file(built):
    modules, data = expected_package_files(project_files())
    with tarfile.open(built["sdist"]) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile()]
    assert all(n.startswith(built["sdist"].name[: -len(".tar.gz")] + "/") for n in names)
    assert missing_from(names, modules, strip_top=True) == [], "modules missing from the sdist"
    assert missing_from(names, data, strip_top=True) == [], "data files missing from the sdist"
    assert missing_from(names, SDIST_EXTRAS, strip_top=True) == [], "the sdist cannot be built again without these"


@pytest.mark.slow
def test_wheel_holds_every_module_and_data_file(built):
    modules, data = expected_package_files(project_files())
    for key in ("wheel", "wheel_from_sdist"):
        names = _wheel_names(built[key])
        assert missing_from(names, modules) == [], f"modules missing from the {key}"
        assert missing_from(names, data) == [], f"data files missing from the {key}"
    tops = {n.split("/", 1)[0] for n in _wheel_names(built["wheel"]) if ".dist-info/" not in n}
    assert tops == set(PACKAGE_ROOTS), f"the wheel installs top-level names {sorted(tops)}"
    strip = lambda names: sorted(n for n in names if ".dist-info/" not in n)  # noqa: E731
    assert strip(_wheel_names(built["wheel"])) == strip(_wheel_names(built["wheel_from_sdist"]))
    with zipfile.ZipFile(built["wheel"]) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    pins = requirement_pins()
    assert re.search(rf"^Requires-Dist: apache-beam\[gcp\]\s*==\s*{re.escape(pins['apache-beam'])}$", meta, re.M)
    assert re.search(rf"^Requires-Dist: tensorflow\s*==\s*{re.escape(pins['tensorflow'])}$", meta, re.M)


@pytest.mark.slow
def test_every_module_imports_from_a_clean_venv(built):
    modules = sorted(module_name(m) for m in expected_package_files(project_files())[0])
    check = built["cwd"] / "import_check.py"
    check.write_text(IMPORT_CHECK)
    proc = run([built["python"], check, json.dumps(modules)], built["cwd"], timeout=900)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["errors"] == {}, "\n".join(f"{k}:\n{v}" for k, v in result["errors"].items())
    purelib = built["purelib"]
    assert Path(result["purelib"]).resolve() == purelib
    outside = {m: f for m, f in result["files"].items() if not Path(f).resolve().is_relative_to(purelib)}
    assert outside == {}, "imported from outside the clean venv"
    assert sorted(result["files"]) == modules
    on_repo = [p for p in result["sys_path"] if p and Path(p).resolve().is_relative_to(REPO)]
    assert on_repo == [], "the repository is on the clean venv's sys.path"
    assert not any("editable" in f.lower() for f in result["meta_path"]), result["meta_path"]
    assert Path(result["dist"]).resolve() == purelib
    assert all(result["data_exists"].values()), result["data"]
    for path in result["data"].values():
        assert path is None or Path(path).resolve().is_relative_to(purelib), path


@pytest.mark.slow
def test_entry_points_run_from_a_clean_venv(built):
    env = clean_env(built["venv"] / "bin")
    out = run([built["python"], "-m", "csadetect.pipelines.detect", "--help"], built["cwd"], env).stdout
    assert "--input_subscription" in out and "--window_seconds" in out
    out = run([built["venv"] / "bin" / "csadetect", "--help"], built["cwd"], env).stdout
    assert "run" in out
    # the Flex Template's entry point, as the launcher runs it, with the installed package
    out = run([built["python"], DEPLOY / "main.py", "--help"], built["cwd"], env).stdout
    assert "--input_subscription" in out


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


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(3)
    return pins


def _expand(value: str, args: dict) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2)) or m.group(0), value)


def parse_dockerfile(path: Path) -> dict:
    """Instructions (continuations joined, comments dropped), the FROM images with their ARGs
    expanded, and the ARG values of the (single) build stage."""
    lines, buf = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append(buf + s)
        buf = ""
    global_args, stage_args, froms, instructions = {}, {}, [], []
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "ARG":
            name, eq, default = rest.partition("=")
            if froms:
                stage_args[name] = default if eq else global_args.get(name)
            else:
                global_args[name] = default if eq else None
        elif instr == "FROM":
            froms.append(_expand(rest.split()[0], global_args))
            stage_args = {}
        instructions.append((instr, rest))
    return {"from": froms, "args": stage_args, "instructions": instructions}


def _runs(df: dict) -> list[str]:
    return [rest for instr, rest in df["instructions"] if instr == "RUN"]


def _copied(df: dict) -> list[tuple[list[str], str]]:
    out = []
    for instr, rest in df["instructions"]:
        if instr == "COPY" and "--from" not in rest:
            *sources, dest = rest.split()
            out.append((sources, dest))
    return out


def _envs(df: dict) -> dict:
    env = {}
    for instr, rest in df["instructions"]:
        if instr == "ENV":
            key, _, value = rest.partition("=")
            env[key.strip()] = value.strip()
    return env


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


# ------------------------------------------------------------------- no import-name collisions


COLLISION_CHECK = r"""
import importlib, json, sys
names = json.loads(sys.argv[1])
theirs = {n: getattr(importlib.import_module(n), "OWNER", None) for n in names}
import csadetect.pipelines.detect, csadetect.models.embedding, csadetect.config.settings
import csadetect.transforms.match, csadetect.indicators.index, csadetect.cli.main
from csadetect.config.settings import load_settings
load_settings()  # finds its packaged default.yaml, not another package's config/
after = {n: getattr(importlib.import_module(n), "OWNER", None) for n in names}
print("RESULT " + json.dumps({"before": theirs, "after": after,
                              "files": {n: importlib.import_module(n).__file__ for n in names}}))
"""


@pytest.mark.slow
def test_other_packages_named_like_ours_do_not_collide(built, tmp_path):
    """Another installed distribution with top-level packages ``models``, ``config``, ``transforms``
    (and the other names older layouts used) is neither shadowed by csadetect nor breaks it: both
    import side by side from the same site-packages."""
    src = tmp_path / "other"
    for name in COMMON_NAMES:
        (src / name).mkdir(parents=True)
        (src / name / "__init__.py").write_text(f"OWNER = 'other-{name}'\n")
    (src / "setup.py").write_text(
        "from setuptools import setup\n"
        f"setup(name='other-dist', version='1.0', packages={list(COMMON_NAMES)!r})\n")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_NO_INDEX="1")
    site = tmp_path / "other-site"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", site, src], tmp_path, env)
    assert sorted(p.name for p in site.iterdir() if (p / "__init__.py").exists()) == sorted(COMMON_NAMES)
    check = tmp_path / "collision_check.py"
    check.write_text(COLLISION_CHECK)
    # the other distribution's directory comes first on the path, as an earlier install would
    env = dict(clean_env(built["venv"] / "bin"), PYTHONPATH=str(site))
    proc = run([built["python"], check, json.dumps(list(COMMON_NAMES))], built["cwd"], env)
    result = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    want = {n: f"other-{n}" for n in COMMON_NAMES}
    assert result["before"] == want and result["after"] == want, result
    assert all(Path(f).resolve().is_relative_to(site.resolve()) for f in result["files"].values())
