"""csadetect.core.parquet: every Parquet read starts no native thread (pyarrow's pools can abort a
finished command at exit, apache/arrow#34314), and the package reads Parquet only through it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csadetect.core import parquet

REPO = Path(__file__).resolve().parent.parent

# a fresh interpreter: the thread count before and after one read (pyarrow's pools start lazily)
COUNT_THREADS = r'''
import io, os, sys
import pyarrow as pa, pyarrow.parquet as pq
from csadetect.core import parquet
path = sys.argv[1]
data = open(path, "rb").read()
before = len(os.listdir("/proc/self/task"))
{read}
print(len(os.listdir("/proc/self/task")) - before)
'''


@pytest.fixture
def table_file(tmp_path):
    table = pa.table({"a": list(range(5000)), "b": [f"row-{i}" for i in range(5000)]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1000)
    return table, path


def _new_threads(read: str, path) -> int:
    out = subprocess.run([sys.executable, "-c", COUNT_THREADS.format(read=read), str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counting threads needs Linux's /proc")
def test_reads_start_no_thread(table_file):
    _, path = table_file
    assert _new_threads("pq.read_table(path)", path) > 0  # the hazard, so the count can tell
    for read in ("parquet.read_table(path)", "parquet.read_table(pa.BufferReader(data), ['b'])",
                 "parquet.open_file(path).read_row_group(2, ['a'])",
                 "list(parquet.open_file(io.BytesIO(data)).iter_batches(100))"):
        assert _new_threads(read, path) == 0, read


def test_reader_reads_what_was_written(table_file):
    table, path = table_file
    assert parquet.read_table(path).equals(table)
    column = parquet.read_table(pa.BufferReader(path.read_bytes()), ["b"]).column("b")
    assert column.to_pylist()[:2] == ["row-0", "row-1"]
    pfile = parquet.open_file(path)
    assert pfile.num_row_groups == 5 and pfile.metadata.num_rows == 5000 and pfile.schema_arrow.names == ["a", "b"]
    assert pfile.read_row_group(4, ["a"]).column("a").to_pylist()[0] == 4000
    assert sum(b.num_rows for b in pfile.iter_batches(700)) == 5000
    with pytest.raises((OSError, ValueError)):
        parquet.open_file(pa.BufferReader(b"not parquet"))


def test_the_package_reads_parquet_only_through_core_parquet():
    pattern = re.compile(r"\bread_table\(|ParquetFile\(|ParquetDataset\(|\bdataset\.dataset\(")
    own = REPO / "csadetect" / "core" / "parquet.py"
    offenders = []
    for path in sorted((REPO / "csadetect").rglob("*.py")):
        if path == own:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and "parquet.read_table(" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert offenders == [], "read Parquet through csadetect.core.parquet: " + ", ".join(offenders)
