"""Shared by the packaging tests (test_packaging.py, test_packaging_template.py): where the Flex
Template lives, what setup.py ships (its packages, what the sdist needs besides them), the pins of
``requirements.txt``, and a reader for the template's Dockerfiles (instructions, FROM images with
their ARGs expanded, RUN, COPY and ENV)."""
from __future__ import annotations

import re
from pathlib import Path

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
