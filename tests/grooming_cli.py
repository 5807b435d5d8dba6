"""``csadetect models evaluate --grooming`` with one of the evaluation split's rewrites (``--obfuscate``,
``--regroup``, ``--pad``), in-process, on a small corpus written to a temporary folder: for the tests
of each attack family."""
from __future__ import annotations

import json

from csadetect.cli.models import main
from training import grooming_corpus as corpus


def evaluate_rewritten(tmp_path, capsys, language: str, flag: str, form: str):
    """``(plain summary, rewritten summary, rewritten stderr, last stderr line for a form that is
    not one)``: the split as it is and rewritten by ``--flag form``, then ``--flag nonsense``."""
    data = tmp_path / "corpus"
    assert corpus.main(["--out", str(data), "--n", "30", "--seed", "5", "--languages", language]) == 0
    base = ["models", "evaluate", "--grooming", "--data", str(data), "--out", str(tmp_path / "p"), "--full"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr()[0])
    assert main(base + [f"--{flag}", form]) == 0
    out, err = capsys.readouterr()
    assert main(["models", "evaluate", "--grooming", "--data", str(data), f"--{flag}", "nonsense"]) == 2
    refused = capsys.readouterr()[1].strip().splitlines()[-1]
    return plain, json.loads(out), err, refused
