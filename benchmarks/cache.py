"""Work folders the benchmarks build once and reuse while their parameters stay the same:
``cached(work, params, build)``. The folder's ``meta.json`` records the parameters it was built
with and what ``build`` returned; other parameters (or no ``meta.json``) rebuild it from empty."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable


def cached(work: Path, params: dict, build: Callable[[Path], dict]) -> dict:
    """``build(work)``'s result for ``params``: read back from ``work/meta.json`` when it was built with
    the same ``params``, else ``work`` emptied, built again and recorded. ``build`` returns JSON data."""
    work = Path(work)
    meta = work / "meta.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("params") == params:
            return saved["data"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = build(work)
    meta.write_text(json.dumps({"params": params, "data": data}))
    return data
