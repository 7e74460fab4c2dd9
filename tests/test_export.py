"""`llmtop export`: every format read back equals the requests view's rows; groupings equal SQL."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from llmtop.cli import main
from tests.review_db import T0, build, q

WINDOW_START = T0 - 2 * 86400.0


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "sim.db"
    build(path, days=3)
    return path


def view_rows(db: Path, where: str = "1", params: tuple[Any, ...] = ()) -> tuple[list[str], list]:
    import sqlite3

    con = sqlite3.connect(db)
    cur = con.execute(
        "SELECT * FROM requests WHERE started_at >= ? AND started_at < ? AND "
        f"{where} ORDER BY started_at, id",
        (WINDOW_START, T0, *params),
    )
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    con.close()
    return names, rows


def run(db: Path, *args: str) -> int:
    return main(["export", "--db", str(db), "--window", "2d", "--until", str(T0), *args])


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_round_trip_equals_the_view(sim_db: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"rows.{fmt}"
    assert run(sim_db, "--format", fmt, "--out", str(out)) == 0
    names, want = view_rows(sim_db)
    assert len(want) > 1000
    if fmt == "csv":
        with open(out, newline="") as fh:
            r = csv.reader(fh)
            header = next(r)
            got_rows = list(r)
        assert header == names
        assert len(got_rows) == len(want)
        for g, w in zip(got_rows, want, strict=True):
            # csv has no types: each cell is the value's text (floats as repr), None as ""
            assert g == ["" if v is None else str(v) for v in w]
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.column_names == names
        got = [tuple(d[n] for n in names) for d in table.to_pylist()]
    elif fmt == "json":
        objs = json.loads(out.read_text())
        got = [tuple(o[n] for n in names) for o in objs]
        assert all(list(o) == names for o in objs[:5])
    else:
        objs = [json.loads(line) for line in out.read_text().splitlines()]
        got = [tuple(o[n] for n in names) for o in objs]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w


def test_filter_and_stdout(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sim_db, "--filter", "feature=chat status=failure", "--format", "jsonl") == 0
    got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    _, want = view_rows(sim_db, "feature = 'chat' AND status = 'failure'")
    assert [g["id"] for g in got] == [w[0] for w in want]
    assert want and all(g["feature"] == "chat" and g["status"] == "failure" for g in got)


def test_group_by_equals_sql(sim_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    assert run(sim_db, "--group-by", "team", "--format", "json", "--out", str(out)) == 0
    got = {g["team"]: g for g in json.loads(out.read_text())}
    want = q(
        sim_db,
        "SELECT team, count(*), total(cost_usd), total(status = 'failure'), total(is_retry)"
        " FROM requests WHERE started_at >= ? AND started_at < ? GROUP BY team",
        (WINDOW_START, T0),
    )
    assert set(got) == {w[0] for w in want}
    for team, n, spend, failures, retries in want:
        g = got[team]
        assert g["requests"] == n and g["failures"] == failures and g["retries"] == retries
        assert g["spend_usd"] == pytest.approx(spend, rel=1e-9)


def test_bad_input_is_one_line(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sim_db, "--filter", 'team="open') == 2
    assert run(sim_db, "--format", "parquet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("llmtop export: --filter: bad filter term")
    assert (
        err[1]
        == "llmtop export: --format parquet needs --out FILE (parquet is not written to a pipe)"
    )


def test_out_never_overwrites_a_database(
    sim_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out` naming the database (or its -wal) wrote a csv over the rows being exported."""
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(sim_db, db)
    before = q(db, "SELECT count(*), sum(cost_usd) FROM requests")
    for args in (
        ("export", "--out", str(db)),
        ("export", "--format", "parquet", "--out", str(db)),
        ("report", "--out", str(db)),
        ("report", "--out", f"{db}-wal"),
    ):
        assert main([args[0], "--db", str(db), "--until", str(T0), *args[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith("is a SQLite database (llmtop's data?): not overwritten"), err
    assert q(db, "SELECT count(*), sum(cost_usd) FROM requests") == before


def test_unwritable_or_out_of_range_input_is_one_line(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk, a NaN timestamp, a window reaching before year 1: one line, exit 2 (they
    were tracebacks, exit 1)."""
    assert run(sim_db, "--out", "/dev/full") == 2
    assert capsys.readouterr().err.strip() == (
        "llmtop export: --out /dev/full: No space left on device"
    )
    assert main(["export", "--db", str(sim_db), "--until", "nan"]) == 2
    assert main(["report", "--db", str(sim_db), "--until", "inf"]) == 2
    assert main(["report", "--db", str(sim_db), "--period", "0001-01-01..2026-01-01"]) == 2
    assert main(["report", "--db", str(sim_db), "--period", "1000000d"]) == 2
    assert main(["whatif", "--db", str(sim_db), "--swap", "a=b", "--window", "99999999d"]) == 2
    assert main(["check", "--db", str(sim_db), "--now", "1e12"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "llmtop export: --until 'nan': a Unix timestamp from 0 to 253402300799",
        "llmtop report: --until 'inf': a Unix timestamp from 0 to 253402300799",
        "llmtop report: --period 0001-01-01..2026-01-01: from 1970 on, at most 3660 days long",
        "llmtop report: --period: bad window '1000000d': at most 3660d (ten years)",
        "llmtop whatif: --window: bad window '99999999d': at most 3660d (ten years)",
        "llmtop check: argument --now: '1e12' is not a time (seconds since 1970, up to year 9999)",
    ]


def test_a_column_is_a_filter_dimension_with_or_without_rows(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's `invalid!=(none)` on a file with no invalid row said "no dimension invalid"."""
    assert q(sim_db, "SELECT count(*) FROM calls WHERE invalid IS NOT NULL") == [(0,)]
    assert run(sim_db, "--filter", "invalid!=(none)") == 0
    assert capsys.readouterr().out.count("\n") == 1  # the header, no row


def test_missing_pyarrow_is_one_line(
    sim_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an install without the extra sees
    assert run(sim_db, "--format", "parquet", "--out", str(tmp_path / "x.parquet")) == 2
    assert capsys.readouterr().err.strip() == (
        "llmtop export: --format parquet needs pyarrow: pip install 'llmtop[parquet]'"
    )


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from llmtop.review.export import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, tty = io.StringIO(), Tty()
    for stream in (pipe, tty):
        p = Progress(1000, stream)
        p.advance(500)
        p.advance(500)
        p.close()
    assert pipe.getvalue() == ""
    assert "100%" in tty.getvalue() and " 50%" in tty.getvalue()


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["export", "--filter", "custmer=x"], "--filter: no dimension custmer; did you mean customer?"),
        (["export", "--group-by", "featur"], "--group-by: no dimension featur; did you mean feature?"),
        (["export", "--group-by", "correlation_id"], "--group-by: no dimension correlation_id"),
        (["report", "--filter", "featur=x"], "--filter: no dimension featur; did you mean feature?"),
        (["whatif", "--swap", "gpt-4o=gpt-4o-mini", "--filter", "featur=x"], "--filter: no dimension featur"),
    ],
)  # fmt: skip
def test_a_misspelled_key_is_refused_not_an_empty_result(
    sim_db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], want: str
) -> None:
    """A key that is no dimension matched no row: an empty export or report and exit 0."""
    assert main([*argv, "--db", str(sim_db), "--until", str(T0)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and want in err, err


def test_a_tag_only_older_rows_carry_is_still_a_dimension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.builders import payload, write

    db = tmp_path / "old.db"
    old = [payload(start=T0 - 7200, feature="f", llmtop={"region": "eu"})]
    write(db, old + [payload(start=T0 - 3600 + i * 0.1, feature="f") for i in range(6000)])
    assert main(["export", "--db", str(db), "--until", str(T0), "--filter", "region=eu"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # the header and its one row
