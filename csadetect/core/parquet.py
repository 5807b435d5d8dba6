"""Reading Parquet files without pyarrow's thread pools: the one way the package opens one.

pyarrow's dataset layer (``pq.read_table``) and its CPU thread pool (``use_threads=True``, the
default of ``ParquetFile.read``) leave native threads running; at interpreter exit they can abort a
command that has finished its work with "terminate called without an active exception" (exit -6,
apache/arrow#34314). Measured on ``csadetect review list``: 3 of 20 runs aborted through
``pq.read_table``, 4 of 40 through ``ParquetFile.read()``, none of 30 through this module.

:func:`open_file` returns a :class:`ParquetReader` whose reads start no thread;
:func:`read_table` reads a whole file (or some columns). Decoding on one thread costs about 0.1 s
on two million rows. Writing (``pq.write_table``) starts no pool and is left as it is.
"""
from __future__ import annotations

from typing import Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq


class ParquetReader:
    """One Parquet file (a path, a file object or a ``pa.BufferReader``), read on the calling thread."""

    def __init__(self, source):
        self._file = pq.ParquetFile(source, pre_buffer=False)

    @property
    def schema_arrow(self) -> pa.Schema:
        return self._file.schema_arrow

    @property
    def metadata(self):
        return self._file.metadata

    @property
    def num_row_groups(self) -> int:
        return self._file.num_row_groups

    def read(self, columns: Optional[list] = None) -> pa.Table:
        return self._file.read(columns=columns, use_threads=False)

    def read_row_group(self, index: int, columns: Optional[list] = None) -> pa.Table:
        return self._file.read_row_group(index, columns=columns, use_threads=False)

    def iter_batches(self, batch_size: int = 65536, columns: Optional[list] = None) -> Iterator[pa.RecordBatch]:
        return self._file.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def open_file(source) -> ParquetReader:
    """``source`` opened for reading (pyarrow's errors, ``OSError``/``ValueError`` kinds, pass through)."""
    return ParquetReader(source)


def read_table(source, columns: Optional[list] = None) -> pa.Table:
    """The whole file at ``source``, or only ``columns``."""
    return ParquetReader(source).read(columns)
