"""What a hostile environment does to the collector, with real processes and real files.

Each test breaks one thing production breaks (the database deleted or replaced while the app
runs, the `-shm` truncated, SIGTERM, repeated outages, malformed values of every kind) and checks
the collector's two promises: the host app is never broken, and every call is a row or a counted
drop.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from llmtop.collector import Writer  # noqa: E402
from llmtop.store.records import CallRecord  # noqa: E402

from tests.dbutil import scalar  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "faulthost.py"


class Host:
    """tests/faulthost.py in its own process, driven line by line."""

    def __init__(self, db: Path, *counts: int) -> None:
        self.p = subprocess.Popen(
            [sys.executable, str(HOST), str(db), *map(str, counts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def expect(self, word: str, timeout: float = 90.0) -> list[str]:
        assert self.p.stdout is not None
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline() if ready else ""
        if not line.startswith(word):
            self.p.kill()
            raise AssertionError(f"host said {line!r}, expected {word}; stderr: {self.stderr()}")
        return line.split(maxsplit=4)[1:]

    def go(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def stderr(self) -> str:
        assert self.p.stderr is not None
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        return self.p.stderr.read()


def rows_plus_drops(db: Path) -> int:
    return scalar(db, "SELECT count(*) FROM calls") + scalar(
        db, "SELECT coalesce(sum(count), 0) FROM drops"
    )


def test_database_deleted_mid_run_is_recreated_and_later_calls_land(tmp_path: Path) -> None:
    db = tmp_path / "llmtop.db"
    h = Host(db, 200, 100)
    assert h.expect("ready") == ["200", "0"]
    for suffix in ("", "-wal", "-shm"):  # someone "resets" the database
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    h.go()
    written, dropped, ok, _ = h.expect("done")
    assert (written, dropped, ok) == ("300", "0", "True")
    h.go()
    h.expect("end")
    err = h.stderr()
    assert h.p.returncode == 0
    assert scalar(db, "SELECT count(*) FROM calls") == 100  # the later calls, in a new file
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert err.count("was removed while open") == 1, err


def test_database_replaced_by_garbage_is_refused_rows_held_then_written(tmp_path: Path) -> None:
    db = tmp_path / "llmtop.db"
    h = Host(db, 100, 100)
    assert h.expect("ready") == ["100", "0"]
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(64 * 1024))
    os.replace(junk, db)
    h.go()
    written, dropped, ok, last_error = h.expect("done")
    assert (written, dropped, ok) == ("100", "0", "False")  # never reported as success
    assert "not a valid llmtop/SQLite database" in last_error
    assert db.read_bytes()[:16] != b"SQLite format 3\x00"  # the garbage is left alone
    for suffix in ("", "-wal", "-shm"):  # the user moves the garbage aside
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    h.go()
    written, dropped, ok, _ = h.expect("end")
    assert (written, dropped, ok) == ("200", "0", "True")  # the held rows, nothing lost
    err = h.stderr()
    assert h.p.returncode == 0
    assert scalar(db, "SELECT count(*) FROM calls") == 100
    assert err.count("not a valid llmtop/SQLite database") == 1, err  # one line, not a flood


def test_truncated_shm_kills_the_sidecar_not_the_host(tmp_path: Path) -> None:
    db = tmp_path / "llmtop.db"
    h = Host(db, 200, 200)
    assert h.expect("ready") == ["200", "0"]
    os.truncate(f"{db}-shm", 0)  # SQLite's mapped index: the next access raises SIGBUS
    h.go()
    h.expect("done")
    h.go()
    written, dropped, ok, _ = h.expect("end")
    err = h.stderr()
    assert h.p.returncode == 0, err  # the host process lives on and keeps serving
    assert (written, dropped, ok) == ("400", "0", "True")
    assert scalar(db, "SELECT count(*) FROM calls") == 400
    assert "killed by SIGBUS" in err


def test_sigterm_flushes_and_dies_of_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "llmtop.db"
    h = Host(db, 1000)
    assert h.expect("ready") == ["1000"]
    h.p.send_signal(signal.SIGTERM)  # right away: the last batch is still in memory
    err = h.stderr()
    assert h.p.returncode == -signal.SIGTERM, err
    assert rows_plus_drops(db) == 1000  # all written, or what the 1 s bound cut off counted


def test_an_app_sigterm_handler_is_never_replaced(tmp_path: Path) -> None:
    code = (
        "import signal, sys\n"
        "def mine(*a): sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        "from llmtop.collector import Collector\n"
        f"Collector(db={str(tmp_path / 'x.db')!r})\n"
        "assert signal.getsignal(signal.SIGTERM) is mine\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_sidecar_killed_between_batches_is_logged_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from llmtop.store.sidecar import SidecarSink

    db = tmp_path / "llmtop.db"
    sink = SidecarSink(db)
    sink.write([CallRecord(started_at=time.time())])
    pid = sink.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with caplog.at_level("WARNING", logger="llmtop"):
        wait_until(lambda: (sink.idle(), sink.pid is None)[1], "the dead sidecar reaped")
    (line,) = [m for m in caplog.messages if "stopped between batches" in m]
    assert "SIGKILL" in line and str(db) in line
    sink.write([CallRecord(started_at=time.time())])
    assert sink.started == 2 and sink.pid not in (None, pid)
    sink.close()
    assert scalar(db, "SELECT count(*) FROM calls") == 2


# --- in-process faults -------------------------------------------------------------------------


@pytest.fixture
def fast_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMTOP_BUSY_TIMEOUT_MS", "20")


def hold_lock(db: Path) -> sqlite3.Connection:
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def wait_until(cond, what: str, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_every_outage_is_logged_not_only_the_first(
    llmtop_db: Path, fast_lock: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmtop.collector")
    w = Writer(llmtop_db, flush_interval=0.02)
    w.submit(CallRecord(started_at=time.time()))
    assert w.flush(20)
    for outage in range(2):
        lock = hold_lock(llmtop_db)
        w.submit(CallRecord(started_at=time.time()))
        wait_until(lambda: w.last_error is not None, f"outage {outage + 1}")
        lock.rollback()
        lock.close()
        assert w.flush(20)
    w.close()
    failures = [r for r in caplog.records if "cannot write to the database" in r.getMessage()]
    recoveries = [r for r in caplog.records if "works again" in r.getMessage()]
    assert len(failures) == 2 and len(recoveries) == 2
    assert len(w.outages) == 2
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 3


def test_wal_is_truncated_when_the_writer_is_idle(llmtop_db: Path) -> None:
    w = Writer(llmtop_db)
    now = time.time()
    for i in range(3000):
        w.submit(CallRecord(started_at=now + i * 1e-3, model="m", cost_usd=0.001))
    assert w.flush(20)
    wal = Path(f"{llmtop_db}-wal")
    assert wal.exists()
    wait_until(lambda: wal.stat().st_size == 0, "the idle checkpoint to truncate the WAL")
    w.close()
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 3000


@pytest.fixture
def writer(llmtop_db: Path) -> Iterator[Writer]:
    w = Writer(llmtop_db, flush_interval=0.02)
    yield w
    w.close()


def test_records_the_database_refuses_are_isolated_repaired_and_never_stop_the_writer(
    writer: Writer, llmtop_db: Path
) -> None:
    """Records built outside the mapping (an app, the demo) can carry anything: 300 bad ones
    in one batch, then a normal one. The normal one lands; each bad one is stored repaired."""
    now = time.time()
    bad = []
    for i in range(300):
        kind = i % 3
        bad.append(
            CallRecord(
                started_at=now,
                model="m\udcff" if kind == 0 else "m",
                input_tokens=2**64 if kind == 1 else 1,
                litellm_cost_usd=float("nan") if kind == 2 else None,
                tags={"customer": "acme\ud800"} if kind == 0 else {},
            )
        )
    for r in bad:
        writer.submit(r)
    writer.submit(CallRecord(started_at=now, model="normal", litellm_call_id="the-normal-one"))
    assert writer.flush(60)
    assert scalar(llmtop_db, "SELECT count(*) FROM calls WHERE litellm_call_id = 'the-normal-one'")
    total = scalar(llmtop_db, "SELECT count(*) FROM calls")
    drops = scalar(llmtop_db, "SELECT coalesce(sum(count), 0) FROM drops")
    assert total + drops == 301
    assert scalar(llmtop_db, "SELECT count(*) FROM requests WHERE invalid LIKE 'repaired%'") == 300
    assert scalar(llmtop_db, "SELECT count(*) FROM requests WHERE model = 'm\ufffd'") == 100


# --- arbitrary payloads through the real callback ----------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SLO_KEYS = (
    "startTime", "endTime", "stream", "completionStartTime", "metadata", "prompt_tokens",
    "completion_tokens", "status", "error_information", "model_map_information", "response",
    "model_parameters", "model_group", "request_tags", "end_user", "cache_hit", "call_type",
    "trace_id", "litellm_call_id", "custom_llm_provider", "model", "saved_cache_cost",
)  # fmt: skip
TAGS = ("feature", "customer", "user", "team", "prompt_version", "llmtop", "attempted_retries",
        "attempted_fallbacks", "original_model_group", "model_group", "tags")  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, 2**64, -1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["\udcff", "a\ud800b", "x" * 10_000, "\x1b[31mred", "a b'\"c", ""]),
    st.binary(max_size=8),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def real_payload() -> dict:
    """The kwargs LiteLLM hands a callback for one real (mock) call."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    got: list[dict] = []

    class Grab(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
            got.append(kwargs)

    litellm.logging_callback_manager._reset_all_callbacks()
    litellm.callbacks = [Grab()]
    litellm.completion(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="hi"
    )
    wait_until(lambda: bool(got), "the real payload")
    litellm.logging_callback_manager._reset_all_callbacks()
    return got[0]


@st.composite
def payloads(draw: st.DrawFn, base: dict) -> tuple[object, bool]:
    if draw(st.integers(0, 9)) == 0:
        return draw(junk), draw(st.booleans())  # not even a dict
    slo = dict(base["standard_logging_object"])
    slo.update(draw(st.dictionaries(st.sampled_from(SLO_KEYS), junk, max_size=5)))
    if draw(st.integers(0, 5)) == 0:
        slo = draw(junk)
    md = dict(base["litellm_params"].get("metadata") or {})
    md.update(draw(st.dictionaries(st.sampled_from(TAGS), junk, max_size=4)))
    kw = {
        **base,
        "standard_logging_object": slo,
        "litellm_params": {**base["litellm_params"], "metadata": md},
        "response_cost": draw(junk),
        "optional_params": {"user": draw(junk)},
        "model": draw(st.one_of(st.just("gpt-4o-mini"), junk)),
        "stream": draw(junk),
        "exception": draw(st.one_of(st.none(), st.just(ValueError("x")))),
    }
    return kw, draw(st.booleans())


def test_arbitrary_payloads_never_stop_the_writer_and_every_call_is_counted(
    llmtop_db: Path,
) -> None:
    """Surrogates, huge and negative ints, NaN/inf, wrong types, nested junk, 10k-character
    strings, through the real callback; then one normal call, which must land. Every call is a
    row or a counted drop."""
    import datetime

    from llmtop.collector import Collector

    base = real_payload()
    c = Collector(db=llmtop_db)
    calls = 0
    normal = 0
    t = datetime.datetime.now()

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(payloads(base), min_size=1, max_size=8))
    def run(batch: list[tuple[object, bool]]) -> None:
        nonlocal calls, normal
        for kw, failed in batch:
            hook = c.log_failure_event if failed else c.log_success_event
            hook(kw, None, t, t)
            calls += 1
        normal += 1
        slo = {**base["standard_logging_object"], "litellm_call_id": f"normal-{normal}"}
        c.log_success_event({**base, "standard_logging_object": slo}, None, t, t)
        calls += 1
        assert c.flush(30)
        assert c.core.writer._thread is not None and c.core.writer._thread.is_alive()
        assert scalar(llmtop_db, f"SELECT count(*) FROM requests WHERE litellm_call_id = 'normal-{normal}'") == 1  # fmt: skip
        assert rows_plus_drops(llmtop_db) == calls

    run()
    c.core.writer.close()


def test_a_token_count_out_of_range_leaves_the_row_unpriced_not_part_priced(
    llmtop_db: Path,
) -> None:
    """An absurd prompt count was stored as 0 and the row priced on its output alone: a part of
    its cost shown as all of it. It is now kept unpriced, counted with the unpriced rows."""
    import datetime

    from llmtop.collector import Collector

    base = real_payload()
    c = Collector(db=llmtop_db)
    t = datetime.datetime.now()
    for i, prompt in enumerate((2**50, 12)):
        slo = {
            **base["standard_logging_object"],
            "prompt_tokens": prompt,
            "litellm_call_id": f"call-{i}",
        }
        c.log_success_event({**base, "standard_logging_object": slo}, None, t, t)
    assert c.flush(30)
    c.core.writer.close()
    bad = "SELECT {} FROM requests WHERE litellm_call_id = 'call-0'"
    assert scalar(llmtop_db, bad.format("cost_usd")) is None
    assert scalar(llmtop_db, bad.format("unpriced")) == 1
    assert "input tokens out of range" in scalar(llmtop_db, bad.format("invalid"))
    ok = "SELECT {} FROM requests WHERE litellm_call_id = 'call-1'"
    assert scalar(llmtop_db, ok.format("cost_usd")) > 0
    assert scalar(llmtop_db, ok.format("invalid")) is None


# --- what is at the path -----------------------------------------------------------------------


def test_a_dangling_symlink_is_refused_and_its_target_never_created(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "real.db"
    link = tmp_path / "llmtop.db"
    link.symlink_to(target)
    w = Writer(link, flush_interval=0.02)
    w.submit(CallRecord(started_at=time.time()))
    assert not w.flush(2)
    assert "symbolic link" in (w.last_error or "")
    w.close(0.5)
    assert not target.exists() and not target.parent.exists()


def test_an_empty_file_is_adopted_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "llmtop.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    w = Writer(db)
    w.submit(CallRecord(started_at=time.time()))
    assert w.flush(20)
    w.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert scalar(db, "SELECT count(*) FROM calls") == 1


@pytest.mark.parametrize("cmd", ["prune", "vacuum"])
@pytest.mark.parametrize("damage", ["garbage", "malformed"])
def test_prune_and_vacuum_on_a_corrupt_file_say_one_line_and_exit_3(
    tmp_path: Path, cmd: str, damage: str
) -> None:
    db = tmp_path / "bad.db"
    if damage == "garbage":
        db.write_bytes(b"not a database at all " * 1000)
    else:
        w = Writer(db, sink="thread")
        for i in range(2000):
            w.submit(CallRecord(started_at=time.time() + i, model=f"m{i}"))
        assert w.flush(20)
        w.close()
        raw = bytearray(db.read_bytes())
        raw[20_000:200_000] = b"\xab" * len(raw[20_000:200_000])
        db.write_bytes(bytes(raw))
    out = subprocess.run(
        [sys.executable, "-m", "llmtop", cmd, "--db", str(db)], capture_output=True, text=True
    )
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"llmtop {cmd}: {db}: the file is not a valid llmtop/SQLite database")


def test_the_snapshot_counts_invalid_rows_in_its_window_and_filter(llmtop_db: Path) -> None:
    from llmtop.store.filters import parse_filter
    from llmtop.store.reader import Reader

    now = time.time()
    w = Writer(llmtop_db, sink="thread")
    for i in range(10):
        bad = "latency out of range" if i % 3 == 0 else None
        w.submit(CallRecord(started_at=now - i, invalid=bad, tags={"feature": "ab"[i % 2]}))
    w.submit(CallRecord(started_at=now - 7200, invalid="tokens out of range"))  # outside 1h
    assert w.flush(20)
    w.close()
    r = Reader(llmtop_db)
    assert r.snapshot(now=now + 1, window=3600).invalid == 4
    assert r.snapshot(now=now + 1, window=3600, clauses=parse_filter("feature=b")).invalid == 2
    assert r.snapshot(now=now + 1, window=86400).invalid == 5
    r.close()


def test_an_unsupported_database_url_is_refused_with_one_line_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # postgresql:// is a backend (tests/test_postgres*.py); any other scheme must not become a
    # SQLite file under ./mysql:/... while every command reports success. The app is never
    # broken: Collector() raised DatabaseError into its start-up; now one error line, and its
    # calls go on, counted as not recorded.
    import litellm
    from llmtop.collector import Collector

    url = "mysql://llmtop:s3cret@db.internal/llmtop"
    monkeypatch.chdir(tmp_path)
    c = Collector(db=url)
    (rec,) = [r for r in caplog.records if "mysql" in r.getMessage()]
    assert rec.levelname == "ERROR" and "s3cret" not in rec.getMessage()
    assert rec.getMessage().endswith("mysql:// databases are not supported; use a SQLite file"
                                     " path (LLMTOP_DB=/path/llmtop.db) or a postgresql:// URL;"
                                     " no call will be recorded")  # fmt: skip
    monkeypatch.setattr(litellm, "callbacks", [c])
    r = litellm.completion(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="ok"
    )
    assert r.choices[0].message.content == "ok"
    assert c.flush(1) is False
    for _ in range(500):  # LiteLLM runs success callbacks on a thread: wait for it, not a time
        if c.core.lost:
            break
        time.sleep(0.01)
    assert c.core.lost == 1
    for cmd in (["check"], [], ["prune"]):
        out = subprocess.run(
            [sys.executable, "-m", "llmtop", *cmd, "--db", url],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert out.returncode in (2, 3), out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert "mysql://db.internal/llmtop: mysql:// databases are not supported" in line
        assert "s3cret" not in line
    assert list(tmp_path.iterdir()) == []  # no ./mysql:/... file created


def fill(disk: Path) -> None:
    """Take every free byte of the filesystem (unbuffered: nothing left to flush on close)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_at_exit_counts_the_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        caplog.set_level(logging.ERROR, logger="llmtop.collector")
        db = disk / "llmtop.db"
        w = Writer(db, flush_interval=0.02)
        w.submit(CallRecord(started_at=time.time()))
        assert w.flush(20)
        fill(disk)
        now = time.time()
        for i in range(500):  # a batch big enough to need new pages
            w.submit(CallRecord(started_at=now + i, model=f"model-{i}", tags={"user": f"u{i}"}))
        assert not w.flush(1.0)
        w.close(1.0)  # the process exits with the disk still full
        lines = [m.getMessage() for m in caplog.records if "before exit" in m.getMessage()]
        assert lines and lines[-1].startswith("llmtop: 500 calls could not be written"), lines
        assert w.dropped == 500
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# --- regressions found in review ---------------------------------------------------------------


def test_sigterm_while_another_process_holds_the_lock_exits_promptly_and_says_what_is_lost(
    tmp_path: Path,
) -> None:
    db = tmp_path / "llmtop.db"
    w = Writer(db, sink="thread")  # the file exists, with its schema
    w.submit(CallRecord(started_at=time.time()))
    assert w.flush(20)
    w.close()
    lock = hold_lock(db)  # for longer than the host will wait
    try:
        h = Host(db, 100)
        assert h.expect("ready") == ["100"]
        h.p.send_signal(signal.SIGTERM)
        try:
            h.p.wait(15)  # the lock is held far longer than the SIGTERM bound
        except subprocess.TimeoutExpired:
            h.p.kill()
            raise AssertionError("the host did not exit while the lock was held") from None
        err = h.stderr()
    finally:
        lock.rollback()
        lock.close()
    assert h.p.returncode == -signal.SIGTERM, err
    assert "100 calls" in err and ("may be lost" in err or "could not be written" in err), err


def test_an_old_database_opened_read_only_counts_no_invalid_rows(tmp_path: Path) -> None:
    from llmtop.store import schema
    from llmtop.store.db import connect
    from llmtop.store.reader import MultiReader

    p = tmp_path / "old.db"
    conn = connect(p)
    for m in schema.MIGRATIONS[:6]:  # a file written before m007
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _llmtop_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        m(conn)
        conn.execute("INSERT INTO _llmtop_migrations VALUES (?, ?)", (m.__name__, time.time()))
        conn.execute("COMMIT")
    conn.close()
    os.chmod(p, 0o400)
    snap = MultiReader([p]).snapshot(now=time.time(), window=3600)
    assert snap.invalid == 0


def proxy_failure(tid: str) -> object:
    """A captured first failure of a proxy request (virtual-key metadata present)."""
    from llmtop.collector.mapping import Captured

    now = time.time()
    slo = {"startTime": now, "endTime": now + 0.1, "trace_id": tid, "model": "gpt-4o-mini",
           "status": "failure", "error_information": {"error_class": "BadRequestError"}}  # fmt: skip
    md = {"user_api_key_hash": "h", "attempted_retries": 0}
    return Captured(slo, md, None, None, "BadRequestError", 400, "gpt-4o-mini", now, now, True)


def test_a_request_raised_at_once_gets_no_inferred_retries(llmtop_db: Path) -> None:
    """The Router stamps its configured num_retries on every exception, a 400 raised at once
    included; only max_retries set too (its retry loop ran) or the metadata's own count is proof."""
    from llmtop.collector import CollectorCore

    w = Writer(llmtop_db, flush_interval=0.02)
    core = CollectorCore(writer=w)
    exc = ValueError("400")
    exc.num_retries = 2  # type: ignore[attr-defined]
    w.submit(proxy_failure("t-400"))
    core.failed_request({"standard_logging_object": {"trace_id": "t-400"}}, exc)
    assert w.flush(20)
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 1
    w.submit(proxy_failure("t-429"))
    data = {"standard_logging_object": {"trace_id": "t-429"}, "metadata": {"attempted_retries": 2}}
    core.failed_request(data, exc)
    assert w.flush(20)
    assert scalar(llmtop_db, "SELECT count(*) FROM requests WHERE trace_id = 't-429'") == 3
    w.close()


def test_sdk_payloads_never_get_inferred_attempts(llmtop_db: Path) -> None:
    from llmtop.collector.mapping import Captured

    now = time.time()
    slo = {"startTime": now, "endTime": now + 0.1, "trace_id": "sdk", "model": "gpt-4o-mini",
           "status": "success", "prompt_tokens": 5, "completion_tokens": 5}  # fmt: skip
    w = Writer(llmtop_db, flush_interval=0.02)
    w.submit(Captured(slo, {"attempted_retries": 3}, None, None, None, None, "m", now, now, False))
    assert w.flush(20)
    w.close()
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 1


def test_a_sidecar_that_cannot_start_falls_back_to_writing_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "python-broken"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    caplog.set_level(logging.WARNING, logger="llmtop.collector")
    db = tmp_path / "llmtop.db"
    w = Writer(db, flush_interval=0.02)
    w.submit(CallRecord(started_at=time.time()))
    assert w.flush(30)
    w.close()
    assert scalar(db, "SELECT count(*) FROM calls") == 1
    assert any("in-process from now on" in r.getMessage() for r in caplog.records)


def test_a_hook_never_raises_when_no_thread_can_start(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from llmtop.collector import CollectorCore
    from llmtop.collector.mapping import Captured

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    w = Writer(llmtop_db, flush_interval=0.02)
    core = CollectorCore(writer=w)
    now = time.time()
    cap = Captured({"startTime": now, "endTime": now}, None, None, None, None, None, "m", now, now, False)  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", refuse)
        core.log({"standard_logging_object": cap.slo}, None, now, now, False)  # must not raise
    assert w.flush(20)  # the call waited in the queue; the next chance started the thread
    w.close()
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 1


def test_a_drop_reason_the_database_cannot_store_costs_no_rows(llmtop_db: Path) -> None:
    w = Writer(llmtop_db, flush_interval=0.02)
    w.drop(5, "disk \udcff gone")
    for _ in range(20):
        w.submit(CallRecord(started_at=time.time()))
    assert w.flush(20)
    w.close()
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 20
    assert scalar(llmtop_db, "SELECT sum(count) FROM drops WHERE reason = 'disk \ufffd gone'") == 5


def test_a_pricing_failure_stores_the_call_unpriced(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmtop.collector import writer as writer_mod

    def broken(rec: CallRecord) -> None:
        raise ValueError("price file unreadable")

    monkeypatch.setattr(writer_mod, "price_record", broken)
    w = Writer(llmtop_db, flush_interval=0.02)
    w.submit(CallRecord(started_at=time.time(), model="gpt-4o-mini", input_tokens=10))
    assert w.flush(20)
    w.close()
    assert scalar(llmtop_db, "SELECT unpriced_reason FROM requests") == (
        "pricing unavailable (ValueError)"
    )


def test_the_idle_checkpoint_never_waits_on_a_reader(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from llmtop.store.sink import SqliteSink

    monkeypatch.setenv("LLMTOP_BUSY_TIMEOUT_MS", "60000")
    sink = SqliteSink(llmtop_db)
    sink.write([CallRecord(started_at=time.time())])
    reader = sqlite3.connect(llmtop_db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM calls").fetchone()  # an open read snapshot
    sink.write([CallRecord(started_at=time.time())])  # a frame the reader does not see
    sink._last_write -= 5  # idle long enough
    t = threading.Thread(target=sink.idle)
    t.start()
    t.join(20)  # far below the 60 s busy timeout a waiting checkpoint would sit out
    assert not t.is_alive()
    reader.rollback()
    reader.close()
    sink.close()


def test_opening_a_database_never_drops_this_process_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it. If
    opening a database read its header through a descriptor it then closed, another process
    closing its last connection would believe it was alone and delete the WAL and -shm under
    this process's open connections (seen as 'disk I/O error' and a corrupt file)."""
    from llmtop.store.db import connect

    db = tmp_path / "llmtop.db"
    w = Writer(db, sink="thread")
    for i in range(100):
        w.submit(CallRecord(started_at=time.time() + i))
    assert w.flush(20)
    mine = sqlite3.connect(db, isolation_level=None)
    mine.execute("BEGIN")
    assert mine.execute("SELECT count(*) FROM calls").fetchone()[0] == 100
    connect(db).close()  # another connection of this process: checks the file, then closes
    other = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM calls').fetchone(); c.close()"
    subprocess.run([sys.executable, "-c", other, str(db)], check=True)
    assert Path(f"{db}-wal").exists() and Path(f"{db}-shm").exists()
    mine.execute("COMMIT")
    assert mine.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    mine.close()
    w.close()
