"""Flex Template entry point of the detection pipeline (``FLEX_TEMPLATE_PYTHON_PY_FILE``).

Dataflow's launcher runs ``python main.py --name=value ...`` with the template parameters of
``metadata.json`` and the job's pipeline options. This file hands them to ``csadetect.pipelines.detect``
(``csadetect run``) after filling in what every launch of this template needs and what the local
defaults of ``csadetect run`` would get wrong:

* ``--runner=DataflowRunner``: ``csadetect.pipelines.detect.run`` picks the DirectRunner for a streaming job
  without a runner, which would run the whole pipeline inside the launcher VM;
* ``--streaming``: the input is a Pub/Sub subscription;
* ``--sdk_container_image``: the worker image (``Dockerfile.worker``), from
  ``$CSADETECT_WORKER_IMAGE``, which ``Dockerfile.launcher`` sets from its ``WORKER_IMAGE`` build
  argument;
* ``--no_wait_until_finish``: the launcher must exit once the job is submitted (Dataflow's Flex
  Template guide: do not call ``wait_until_finish``);
* a ``gs://`` ``--config`` is copied to a local file first: the settings are read with ``open()``.

An option given explicitly (a template parameter, or ``--parameters`` at launch) always wins.
The entry point is a separate file rather than ``csadetect/pipelines/detect.py`` itself: run as a script,
that module would be loaded twice (``__main__`` and ``csadetect.pipelines.detect``).
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable, Optional, Sequence

WORKER_IMAGE_ENV = "CSADETECT_WORKER_IMAGE"


def _has(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _config_index(argv: Sequence[str]) -> Optional[tuple[int, str]]:
    """(index of the value, value) of the last ``--config``, or None."""
    found = None
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            found = (i, a.split("=", 1)[1])
        elif a == "--config" and i + 1 < len(argv):
            found = (i + 1, argv[i + 1])
    return found


def _beam_open(path: str):
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type="uncompressed")


def localize_config(argv: Sequence[str], opener: Callable = _beam_open, tmpdir: Optional[str] = None) -> list[str]:
    """``argv`` with a remote ``--config`` (``gs://...``, any Beam filesystem URL) replaced by a
    local copy, since ``csadetect.config.settings.load_settings`` reads a local file."""
    argv = list(argv)
    found = _config_index(argv)
    if found is None or "://" not in found[1]:
        return argv
    index, url = found
    with opener(url) as src:
        data = src.read()
    fd, local = tempfile.mkstemp(prefix="csadetect-config-", suffix=".yaml", dir=tmpdir)
    with os.fdopen(fd, "wb") as dst:
        dst.write(data)
    if argv[index].startswith("--config="):
        argv[index] = f"--config={local}"
    else:
        argv[index] = local
    return argv


def launch_argv(argv: Sequence[str], env: Optional[dict] = None) -> list[str]:
    """The arguments for ``csadetect.pipelines.detect.main`` on a Flex Template launch."""
    env = os.environ if env is None else env
    out = list(argv)
    if not _has(out, "runner"):
        out.append("--runner=DataflowRunner")
    if not _has(out, "streaming"):
        out.append("--streaming")
    image = env.get(WORKER_IMAGE_ENV)
    if image and not _has(out, "sdk_container_image"):
        out.append(f"--sdk_container_image={image}")
    if not _has(out, "no_wait_until_finish"):
        out.append("--no_wait_until_finish")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    from csadetect.pipelines.detect import main as detect_main  # lazy: the argv helpers above load without Beam or TF

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        return detect_main(argv)
    return detect_main(localize_config(launch_argv(argv)))


if __name__ == "__main__":
    sys.exit(main())
