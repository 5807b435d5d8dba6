"""The README's demo summary is what `make demo` prints (issue 13 §6: the two had drifted).

:func:`readme_demo_mismatches` compares the summary block of README.md ("prints a summary like")
with a demo's standard output: every README line must appear in the output, in order. Tolerated,
because they differ from run to run: ``…`` in the README (a report id, a list of indicator ids),
run ids (``20261202T233000Z-3fa1c2``) and the demo's output directory in paths (the README says
``out/``). Numbers and words must match. The demo itself runs once, in
``tests/test_cli.py::test_demo_end_to_end``, which checks its output with this function; the tests
here show that the comparison catches a drifted count and tolerates only what varies.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{6}\b")
ELLIPSIS = "…"


def readme_demo_block(text: Optional[str] = None) -> list[str]:
    """The lines of the README's demo summary: the fenced block after "prints a summary like"."""
    text = README.read_text(encoding="utf-8") if text is None else text
    start = text.find("prints a summary like")
    match = re.compile(r"```[^\n]*\n(.*?)\n```", re.S).search(text, start) if start >= 0 else None
    assert match, "README.md has no demo summary block (\"prints a summary like\" and a ``` block after it)"
    return [line.rstrip() for line in match.group(1).splitlines() if line.strip()]


def _normalise(line: str) -> str:
    return RUN_ID.sub("<run-id>", line.rstrip())


def _pattern(line: str) -> re.Pattern:
    parts = [re.escape(part) for part in _normalise(line).split(ELLIPSIS)]
    text = ".*?".join(parts)
    return re.compile(re.sub(r"(\\ )+|\s+", r"\\s+", text))


def demo_output_lines(output: str, out_dir: str = "out") -> list[str]:
    """The demo's stdout lines, its output directory written ``out`` (as in the README) and run
    ids replaced."""
    lines = []
    for line in output.splitlines():
        for prefix in sorted({str(out_dir), str(Path(out_dir).resolve())}, key=len, reverse=True):
            if prefix != "out":
                line = line.replace(prefix.rstrip("/") + "/", "out/")
        lines.append(_normalise(line))
    return lines


def readme_demo_mismatches(output: str, out_dir: str = "out", readme: Optional[str] = None) -> list[str]:
    """The README summary lines that the demo's ``output`` does not print (in the README's order);
    ``[]`` when the README tells the truth."""
    lines = demo_output_lines(output, out_dir)
    missing, at = [], 0
    for wanted in readme_demo_block(readme):
        pattern = _pattern(wanted)
        for i in range(at, len(lines)):
            if pattern.fullmatch(lines[i].strip()) or pattern.fullmatch(lines[i]):
                at = i + 1
                break
        else:
            missing.append(wanted)
    return missing


# -- the comparison itself ----------------------------------------------------------------------


def _as_printed(block: list[str], out_dir: str, run_id: str = "20261203T001500Z-0a1b2c") -> str:
    """What a demo printing exactly the README's lines would print: ``…`` filled in, a run id, the
    output directory in paths, and lines the README leaves out in between."""
    lines = ["", "demo: something the README does not show"]
    for line in block:
        line = line.replace(ELLIPSIS, "5e0f00aa11bb").replace("out/", out_dir.rstrip("/") + "/")
        lines += [RUN_ID.sub(run_id, line), "  a line the README leaves out"]
    return "\n".join(lines) + "\n"


def test_the_readme_has_a_demo_summary_with_its_counts():
    block = readme_demo_block()
    assert any(line.startswith("events received ") and line.endswith("[OK]") for line in block)
    assert any(line.startswith("reports written: ") for line in block)
    assert any("=== feedback" in line for line in block)


def test_matching_output_passes_whatever_the_run_id_and_output_directory(tmp_path):
    block = readme_demo_block()
    out_dir = str(tmp_path / "out")
    assert readme_demo_mismatches(_as_printed(block, out_dir), out_dir) == []
    assert readme_demo_mismatches(_as_printed(block, "out", "20270101T000000Z-ffffff"), "out") == []


def test_a_drifted_count_is_caught():
    block = readme_demo_block()
    printed = _as_printed(block, "out")
    counts = next(line for line in block if line.startswith("events received "))
    hits = int(re.search(r"hits (\d+)", counts).group(1))
    drifted = printed.replace(f"hits {hits} ", f"hits {hits + 1} ")
    assert readme_demo_mismatches(drifted, "out") == [counts]
    # a line the demo no longer prints is caught, and so is one printed out of order
    assert readme_demo_mismatches(printed.replace(block[-1], "something else"), "out") == [block[-1]]
    swapped = "\n".join(reversed(printed.splitlines()))
    assert readme_demo_mismatches(swapped, "out")


def test_only_the_ellipsis_is_a_wildcard():
    readme = "prints a summary like:\n\n```\nreports written: 7 (duplicates collapsed: 1)\n  report …  evt-a\n```\n"
    assert readme_demo_mismatches("reports written: 7 (duplicates collapsed: 1)\n  report 12ab  evt-a\n",
                                  readme=readme) == []
    assert readme_demo_mismatches("reports written: 70 (duplicates collapsed: 1)\n  report 12ab  evt-a\n",
                                  readme=readme) == ["reports written: 7 (duplicates collapsed: 1)"]
    assert readme_demo_mismatches("reports written: 7 (duplicates collapsed: 1)\n  report 12ab  evt-b\n",
                                  readme=readme) == ["  report …  evt-a"]
