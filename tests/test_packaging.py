"""Packaging for Dataflow workers (``--setup_file ./setup.py``): what setup.py ships.

Fast: the file-list checks the slow tests rely on (every module and data file of the packages, an
``__init__.py`` in every package directory, one import name) and the overlay that keeps an
editable install of the project out of the clean venv.

Slow: build the sdist (as Beam's stager does for ``--setup_file``) and the wheel from a copy of the
source tree, check that both hold every module and every data file of the packages, build a wheel
from the sdist (what Dataflow workers install) and install the wheel into a clean venv that sees
the third-party packages of this interpreter but not the project, then import every module and run
``python -m csadetect.pipelines.detect --help`` there; and another distribution with top-level
packages named like ours installed next to it, neither shadowed nor breaking it.

The Flex Template in ``deploy/dataflow/`` (metadata, Dockerfiles, launcher) is tested in
test_packaging_template.py; what both use is in packaging_helpers.py.
"""
from __future__ import annotations

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

from tests.packaging_helpers import (COMMON_NAMES, DEPLOY, NOT_SHIPPED, PACKAGE_ROOTS, REPO, SDIST_EXTRAS,
                                     WORKER_DOCKERFILE, _envs, parse_dockerfile, requirement_pins)


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
