"""The Java side of a local Flink run, and where it is cached: which releases, and fetching them.

One Beam release everywhere: the Python SDK (``apache-beam`` in requirements.txt), Beam's Flink job
server with its expansion service, and KafkaIO are all :data:`BEAM_VERSION`. It is the newest
release whose Java artifacts resolve from Maven Central here (docs/deploy.md, "Flink": 2.63-2.77
lack ``beam-runners-flink-1.19`` or its ``beam-runners-java-job-service``). The pieces:

* **Flink** :data:`FLINK_VERSION`, the distribution's ``lib/`` as PyPI ships it in the
  ``apache-flink-libraries`` source archive (Maven Central does not serve ``flink-dist``);
  ``pip download --no-deps`` fetches it, nothing of PyFlink is installed.
* **Beam's Flink job server**: ``beam-runners-flink-1.19`` + ``beam-sdks-java-io-kafka`` and their
  dependencies, copied by Maven from ``deploy/flink/jobserver.pom.xml`` (the shaded
  ``beam-runners-flink-1.19-job-server`` jar is the same code but is not served here).
* **Kafka** :data:`KAFKA_VERSION` (broker ``kafka_2.13`` from ``deploy/flink/kafka.pom.xml``,
  the same release as the ``kafka-clients`` KafkaIO runs with).

Everything lands under :func:`cache_dir` (``.cache/flink`` in the repository, or
``$CSADETECT_FLINK_CACHE``), once: ``make flink-deps`` (and ``make flink-up``) call
:func:`fetch_all`; the tests only look (:func:`missing`) and skip with a line naming what is absent.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Optional

BEAM_VERSION = "2.62.0"
FLINK_VERSION = "1.19.3"  # the Flink line Beam 2.62's runner is built for (beam-runners-flink-1.19)
FLINK_MINOR = "1.19"
KAFKA_VERSION = "3.9.1"

REPO = Path(__file__).resolve().parents[2]
POMS = REPO / "deploy" / "flink"


class MissingArtifact(RuntimeError):
    """A piece of the local cluster is not in the cache (or could not be fetched)."""


def cache_dir() -> Path:
    return Path(os.environ.get("CSADETECT_FLINK_CACHE") or REPO / ".cache" / "flink")


def flink_home() -> Path:
    return cache_dir() / f"flink-{FLINK_VERSION}"


def jobserver_dir() -> Path:
    return cache_dir() / f"jobserver-{BEAM_VERSION}"


def kafka_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def _has_jars(path: Path, marker: str) -> bool:
    return path.is_dir() and any(p.name.startswith(marker) for p in path.glob("*.jar"))


def missing() -> list:
    """What is not in the cache, as artifact names (empty when everything is there)."""
    out = []
    if not _has_jars(flink_home() / "lib", "flink-dist"):
        out.append(f"Flink {FLINK_VERSION} (PyPI apache-flink-libraries=={FLINK_VERSION}) in {flink_home()}")
    if not _has_jars(jobserver_dir(), f"beam-runners-flink-{FLINK_MINOR}-{BEAM_VERSION}"):
        out.append(f"org.apache.beam:beam-runners-flink-{FLINK_MINOR}:{BEAM_VERSION} (Maven Central) in {jobserver_dir()}")
    if not _has_jars(kafka_dir(), f"kafka_2.13-{KAFKA_VERSION}"):
        out.append(f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION} (Maven Central) in {kafka_dir()}")
    if not java():
        out.append("java (a JDK 11 or newer on PATH or in $JAVA_HOME)")
    return out


def java() -> Optional[str]:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def sdk_version_matches() -> Optional[str]:
    """None when the installed Python SDK is :data:`BEAM_VERSION`, else one line saying what is."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("apache-beam")
    except PackageNotFoundError:
        installed = "(none)"
    if installed != BEAM_VERSION:
        return (f"apache-beam {installed} is installed but the Flink job server is Beam "
                f"{BEAM_VERSION}: one Beam release everywhere (run `make install`)")
    return None


def _run(cmd: list, what: str, log: Callable[[str], None]) -> None:
    log(f"fetching {what} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise MissingArtifact(f"could not fetch {what}: {' '.join(cmd[:3])} ... exited {proc.returncode}\n{tail}")


def fetch_flink(log: Callable[[str], None] = print) -> Path:
    """Flink's distribution from the ``apache-flink-libraries`` source archive on PyPI: ``lib/``,
    ``opt/``, ``plugins/`` and ``bin/bash-java-utils.jar``, unpacked into :func:`flink_home`."""
    home = flink_home()
    if _has_jars(home / "lib", "flink-dist"):
        return home
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
              "-d", tmp, f"apache-flink-libraries=={FLINK_VERSION}"],
             f"apache-flink-libraries=={FLINK_VERSION} (PyPI, ~230 MB)", log)
        archive = next(Path(tmp).glob("apache*flink*libraries*.tar.gz"))
        staging = Path(tmp) / "flink"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) > 2 and parts[1] == "deps" and parts[2] in ("lib", "opt", "plugins", "bin", "licenses"):
                    member.name = str(Path(*parts[2:]))
                    tar.extract(member, staging, filter="data")
        if not _has_jars(staging / "lib", "flink-dist"):
            raise MissingArtifact(f"apache-flink-libraries=={FLINK_VERSION} holds no lib/flink-dist jar")
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
    return home


def fetch_maven(pom: str, dest: Path, what: str, log: Callable[[str], None] = print) -> Path:
    if dest.is_dir() and any(dest.glob("*.jar")):
        return dest
    if not shutil.which("mvn"):
        raise MissingArtifact(f"{what}: Maven (mvn) is not on PATH")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["mvn", "-q", "-B", "-f", str(POMS / pom), "dependency:copy-dependencies",
          f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"], f"{what} (Maven Central)", log)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def pom_versions() -> dict:
    """The versions the two POMs pin (checked against the constants here by the tests)."""
    out = {}
    for pom in ("jobserver.pom.xml", "kafka.pom.xml"):
        for key, value in re.findall(r"<(beam|kafka)\.version>([^<]+)<", (POMS / pom).read_text()):
            out.setdefault(key, set()).add(value)
    return out


def fetch_all(log: Callable[[str], None] = print) -> None:
    cache_dir().mkdir(parents=True, exist_ok=True)
    fetch_flink(log)
    fetch_maven("jobserver.pom.xml", jobserver_dir(), f"Beam {BEAM_VERSION} Flink job server + KafkaIO", log)
    fetch_maven("kafka.pom.xml", kafka_dir(), f"Kafka {KAFKA_VERSION} broker", log)
    gone = missing()
    if gone:
        raise MissingArtifact("still missing: " + "; ".join(gone))
