"""`llmtop export`: the `requests` view's rows, or a grouping, as csv, json, jsonl or parquet.

Streams: rows come from the store in chunks (store.rows) and each chunk is written before the
next is read, so memory stays flat at 10M rows (benchmarks/review.py measures it). JSON is
written as one array, an object at a time, for the same reason. Parquet needs pyarrow (the
optional extra `llmtop[parquet]`); each chunk becomes one row group.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import IO, Any

from llmtop.review.common import UsageError, check_out
from llmtop.store.rows import Column

FORMATS = ("csv", "json", "jsonl", "parquet")


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (a pipe or a CI
    log gets nothing, not a thousand carriage returns)."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = max(total, 0)
        self.done = 0
        self.on = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = -1

    def advance(self, n: int) -> None:
        self.done += n
        if not self.on:
            return
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        step = int(frac * 100)
        if step == self._shown:
            return
        self._shown = step
        bar = "#" * (step // 4) + "-" * (25 - step // 4)
        self.stream.write(f"\rexport [{bar}] {step:3d}% {self.done:,} rows")
        self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\n")
            self.stream.flush()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_rows(
    chunks: Iterable[Sequence[tuple[Any, ...]]],
    columns: Sequence[Column],
    fmt: str,
    out: Path | None,
    progress: Progress | None = None,
) -> int:
    """Write every chunk in `fmt` to `out` (None: stdout); returns the number of rows."""
    if out is not None:
        check_out(out)
    if fmt == "parquet":
        if out is None:
            raise UsageError("--format parquet needs --out FILE (parquet is not written to a pipe)")
        return _write_parquet(chunks, columns, out, progress)
    names = [c.name for c in columns]
    fh: IO[str]
    if out is None:
        fh = sys.stdout
    else:
        try:
            fh = open(out, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"--out {out}: {exc.strerror or exc}") from None
    n = 0
    try:
        if fmt == "csv":
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(names)
            for chunk in chunks:
                w.writerows(["" if v is None else v for v in r] for r in chunk)
                n += len(chunk)
                if progress:
                    progress.advance(len(chunk))
        elif fmt in ("json", "jsonl"):
            first = True
            if fmt == "json":
                fh.write("[")
            for chunk in chunks:
                buf = io.StringIO()
                for r in chunk:
                    obj = json.dumps(
                        {k: _json_value(v) for k, v in zip(names, r, strict=True)},
                        ensure_ascii=False,
                    )
                    if fmt == "jsonl":
                        buf.write(obj + "\n")
                    else:
                        buf.write(("\n" if first else ",\n") + obj)
                        first = False
                fh.write(buf.getvalue())
                n += len(chunk)
                if progress:
                    progress.advance(len(chunk))
            if fmt == "json":
                fh.write("\n]\n" if not first else "]\n")
        else:
            raise UsageError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
        if out is not None:
            fh.flush()
    except OSError as exc:
        if out is None:
            raise  # stdout closed (a pipe to `head`): the CLI's SIGPIPE handling ends quietly
        raise UsageError(f"--out {out}: {exc.strerror or exc}") from None
    finally:
        if out is not None:
            fh.close()
        if progress:
            progress.close()
    return n


def _arrow_schema(columns: Sequence[Column]) -> Any:
    import pyarrow as pa

    kinds = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    return pa.schema([(c.name, kinds[c.kind]) for c in columns])


def _write_parquet(
    chunks: Iterable[Sequence[tuple[Any, ...]]],
    columns: Sequence[Column],
    out: Path,
    progress: Progress | None,
) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("--format parquet needs pyarrow: pip install 'llmtop[parquet]'") from None
    schema = _arrow_schema(columns)
    n = 0
    try:
        writer = pq.ParquetWriter(str(out), schema)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc}") from None
    try:
        for chunk in chunks:
            cols = list(zip(*chunk, strict=True)) if chunk else [[] for _ in columns]
            arrays = [
                pa.array(list(vals), type=schema.field(i).type) for i, vals in enumerate(cols)
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            n += len(chunk)
            if progress:
                progress.advance(len(chunk))
    finally:
        writer.close()
        if progress:
            progress.close()
    return n


def group_chunks(groups: Sequence[Any]) -> list[list[tuple[Any, ...]]]:
    """GroupTotal rows as one chunk of tuples (a grouping is small: one row per value)."""
    return [[(*astuple(g), g.cost_per_request) for g in groups]]
