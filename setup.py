"""Packaging for local installs and for Dataflow/Flink workers (``--setup_file ./setup.py``)."""
from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent


def requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name="csadetect",
    version="0.1.0",
    description="Open, privacy-preserving CSA detection pipeline on Apache Beam (known material, new material, grooming)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    # One import name: everything lives under ``csadetect`` (docs/architecture.md, "Packaging").
    # ``training/``, ``benchmarks/`` and ``tests/`` stay out of the wheel.
    packages=find_packages(include=["csadetect", "csadetect.*"]),
    package_data={"csadetect.config": ["*.yaml"],
                  "csadetect.reports": ["schemas/*.json", "schemas/*.xsd"],
                  "csadetect.compliance": ["templates/*"],
                  "csadetect.console": ["templates/*.html", "static/*.css", "static/*.js"],
                  "csadetect.models": ["reference/*/*", "cards/*.md"]},
    include_package_data=True,
    install_requires=requirements(),
    # two compiled kernels, CPython API only (no numpy headers), both optional: the multi-index
    # hashing loop (csadetect/signals/_mih.c; without it the same search runs in numpy) and PDQ
    # (csadetect/media/_pdq.c; without it the `pdqhash` binding hashes, about five times slower)
    ext_modules=[Extension("csadetect.signals._mih", ["csadetect/signals/_mih.c"], extra_compile_args=["-O3"],
                           optional=True),
                 Extension("csadetect.media._pdq", ["csadetect/media/_pdq.c"], extra_compile_args=["-O3"],
                           optional=True)],
    entry_points={"console_scripts": ["csadetect=csadetect.cli.main:main"]},
)
