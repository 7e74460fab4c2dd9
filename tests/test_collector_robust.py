"""The collector under stress and breakage: whatever happens to the database, the app's calls work.

Each test breaks one thing a real deployment breaks (several worker processes on one file, a
writer locked out for a while, a corrupt or newer file, a fork, garbage payloads) and checks both
halves of the contract: the host app never sees an exception from us, and what reaches the file
is exact (rows, plus counted drops), never silently short.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
import litellm  # noqa: E402
from llmtop.collector import Collector, CollectorCore, Writer  # noqa: E402
from llmtop.collector import writer as writer_mod  # noqa: E402
from llmtop.store.schema import MIGRATIONS, open_db  # noqa: E402

from tests.dbutil import scalar  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_callbacks() -> Iterator[None]:
    litellm.logging_callback_manager._reset_all_callbacks()
    yield
    litellm.logging_callback_manager._reset_all_callbacks()


def register(c: Collector) -> Collector:
    litellm.callbacks = [c]
    return c


def with_writer(c: Collector, w: Writer) -> Collector:
    """Give a collector its own writer (small queue, fast cadence) instead of the shared one."""
    c._core = CollectorCore(writer=w)
    return c


def wait_for(cond: Any, what: str, timeout: float = 15.0) -> None:
    """Bounded wait for a condition driven by other threads (LiteLLM's logging pool, our writer)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def call(n: int = 1) -> None:
    for _ in range(n):
        resp = litellm.completion(model="gpt-4o-mini", messages=MSG, mock_response="hi")
        assert resp.choices[0].message.content == "hi"


# --- several processes, one file ---------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import os, sys, time
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from llmtop.collector import Collector

    db, n = sys.argv[1], int(sys.argv[2])
    c = Collector(db=db)
    litellm.callbacks = [c]
    for _ in range(n):
        litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                           mock_response="hi")
    w = c.core.writer
    deadline = time.monotonic() + 60
    while w.written < n and time.monotonic() < deadline:  # success hooks run in a thread pool
        c.flush()
        time.sleep(0.05)
    sys.exit(0 if c.flush() and w.written == n and w.dropped == 0 else 3)
    """
)


def test_four_processes_500_calls_each_one_file(tmp_path: Path) -> None:
    """The same race as the full-size run below, at a size the default suite can afford."""
    four_processes_one_file(tmp_path, 500)


@pytest.mark.slow  # ~2 minutes on 2 cores; benchmarks/multiprocess_writers.py runs it
def test_four_processes_5000_calls_each_one_file(tmp_path: Path) -> None:
    four_processes_one_file(tmp_path, 5000)


def four_processes_one_file(tmp_path: Path, calls: int) -> None:
    # Separate interpreters (what proxy workers are), started together against one new file:
    # they also race on creating it and on applying the migrations.
    db = tmp_path / "shared.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db), str(calls)], env=env, cwd=tmp_path
        )
        for _ in range(4)
    ]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0, 0, 0]
    assert scalar(db, "SELECT count(*) FROM calls") == 4 * calls
    assert scalar(db, "SELECT count(*) FROM drops") == 0
    assert scalar(db, "SELECT count(DISTINCT litellm_call_id) FROM calls") == 4 * calls
    assert scalar(db, "SELECT count(*) FROM _llmtop_migrations") == len(MIGRATIONS)


# --- the writer loses the database for a while -------------------------------------------------


def test_locked_out_writer_buffers_counts_drops_and_recovers(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMTOP_BUSY_TIMEOUT_MS", "20")
    monkeypatch.setattr(writer_mod, "RETRY_INTERVAL", 0.05)
    w = Writer(llmtop_db, max_queue=50, flush_interval=0.02)
    c = register(with_writer(Collector(db=llmtop_db), w))

    call(10)
    wait_for(lambda: w.written == 10, "the first 10 rows")
    before = [r[0] for r in sqlite3.connect(llmtop_db).execute("SELECT id FROM calls ORDER BY id")]
    assert len(before) == 10

    # Another process takes the write lock and keeps it.
    locker = sqlite3.connect(llmtop_db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        caplog.set_level(logging.ERROR, logger="llmtop.collector")
        call(80)  # no exception reaches the app
        # At most 50 fit in the buffer; the rest are counted, not silently lost. (Usually exactly
        # 30 drop; more only if the queue also filled while a write attempt was blocked.)
        wait_for(lambda: not w._q and w.dropped + len(w._pending) == 80, "all 80 handled")
        assert w.dropped >= 30
        assert not w.flush(0.5)  # honest: nothing could be written yet
        assert w.written == 10
        assert any("locked" in r.getMessage() for r in caplog.records)
    finally:
        locker.execute("COMMIT")
        locker.close()

    wait_for(lambda: w.flush(1.0), "the writer to get the database back")
    dropped = w.dropped
    assert w.written == 10 + 80 - dropped
    w.close()
    ids = [r[0] for r in sqlite3.connect(llmtop_db).execute("SELECT id FROM calls ORDER BY id")]
    assert len(ids) == 90 - dropped and ids[:10] == before  # nothing stored before is lost
    assert scalar(llmtop_db, "SELECT sum(count) FROM drops") == dropped  # the exact count
    assert scalar(llmtop_db, "SELECT count(*) FROM drops") >= 1
    # Rows that met the full buffer say why; a few may instead have met a full queue while a
    # write attempt was blocked, and say that.
    reasons = {r[0] for r in sqlite3.connect(llmtop_db).execute("SELECT reason FROM drops")}
    assert reasons and all("locked" in r or r == "queue full" for r in reasons), reasons
    del c


# --- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB filesystem (tmpfs), so the disk really fills: needs root and mount rights,
    which CI's container has; elsewhere the test says why it is skipped."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(disk: Path) -> Path:
    """Take every free byte of the filesystem; deleting the file gives them back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # unbuffered: nothing left to flush on close
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_app_unaffected_drops_counted_and_stored_once_space_returns(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer_mod, "RETRY_INTERVAL", 0.05)
    db = small_disk / "llmtop.db"
    w = Writer(db, max_queue=50, flush_interval=0.02)
    register(with_writer(Collector(db=db), w))
    call(10)
    wait_for(lambda: w.written == 10, "the first 10 rows")
    before = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM calls ORDER BY id")]

    caplog.set_level(logging.ERROR, logger="llmtop.collector")
    filler = _fill(small_disk)
    call(80)  # the disk is full: no exception reaches the app
    wait_for(lambda: not w._q and w.dropped + len(w._pending) == 80, "all 80 handled")
    assert w.dropped >= 30 and w.written == 10
    assert not w.flush(0.3)
    assert any("full" in m for m in _collector_errors(caplog)), _collector_errors(caplog)

    filler.unlink()  # space comes back
    wait_for(lambda: w.flush(1.0), "the writer to write again")
    dropped = w.dropped
    w.close()
    ids = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM calls ORDER BY id")]
    assert len(ids) == 90 - dropped and ids[:10] == before  # nothing stored before is lost
    assert scalar(db, "SELECT sum(count) FROM drops") == dropped
    assert scalar(db, "PRAGMA integrity_check") == "ok"


# --- a file we must not write --------------------------------------------------------------------


def _collector_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmtop.collector" and r.levelno >= logging.ERROR
    ]


def test_corrupt_file_one_clear_error_app_unaffected(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer_mod, "RETRY_INTERVAL", 0.01)
    garbage = b"this is not sqlite\x00\xff" * 512
    llmtop_db.write_bytes(garbage)
    caplog.set_level(logging.ERROR, logger="llmtop.collector")
    w = Writer(llmtop_db, flush_interval=0.01)
    register(with_writer(Collector(db=llmtop_db), w))
    for _ in range(5):  # several calls and several write retries
        call(1)
        with pytest.raises(litellm.RateLimitError):  # the app's own error, unchanged
            litellm.completion(
                model="gpt-4o-mini", messages=MSG, mock_response="litellm.RateLimitError"
            )
        time.sleep(0.03)
    wait_for(lambda: not w._q, "the writer to take the queued events")
    assert not w.flush(0.5)
    errors = _collector_errors(caplog)
    assert len(errors) == 1, errors
    assert "not a valid llmtop/SQLite database" in errors[0]
    assert str(llmtop_db) in errors[0] and "move it aside" in errors[0]
    assert llmtop_db.read_bytes() == garbage  # never "repaired" over the user's file
    w.close()


def test_newer_schema_is_refused_app_unaffected(
    llmtop_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = open_db(llmtop_db)
    conn.execute(
        "INSERT INTO _llmtop_migrations (name, applied_at) VALUES ('m999_from_the_future', 0)"
    )
    conn.close()
    caplog.set_level(logging.ERROR, logger="llmtop.collector")
    w = Writer(llmtop_db, flush_interval=0.01)
    register(with_writer(Collector(db=llmtop_db), w))
    call(3)
    wait_for(lambda: bool(_collector_errors(caplog)), "the refusal to be logged")
    (msg,) = _collector_errors(caplog)
    assert "newer llmtop" in msg and "m999_from_the_future" in msg
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 0
    w.close()


# --- fork ---------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_writes_through_its_own_writer(llmtop_db: Path) -> None:
    c = register(Collector(db=llmtop_db))
    call(2)
    parent_writer = c.core.writer
    wait_for(lambda: parent_writer.written == 2, "the parent's rows")
    pid = os.fork()
    if pid == 0:  # child: any failure is reported through the exit code
        code = 1
        try:
            signal.alarm(30)
            w = c.core.writer
            ok = w is not parent_writer and w.pid == os.getpid()
            # Failure hooks run inline on the calling thread (LiteLLM's success pool may not
            # survive a fork), so these calls exercise the hook path deterministically.
            for _ in range(3):
                try:
                    litellm.completion(
                        model="gpt-4o-mini", messages=MSG, mock_response="litellm.RateLimitError"
                    )
                except litellm.RateLimitError:
                    pass
            ok = ok and c.flush(10) and w.written == 3 and w._thread is not None
            ok = ok and w._thread.name.startswith("llmtop-writer") and w._thread.is_alive()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    call(1)
    wait_for(lambda: parent_writer.written == 3, "the parent's row after the fork")
    assert c.core.writer is parent_writer
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 6
    assert scalar(llmtop_db, "SELECT count(*) FROM calls WHERE status = 1") == 3
    parent_writer.close()


def _mp_work(n: int) -> None:
    for _ in range(n):
        litellm.completion(model="gpt-4o-mini", messages=MSG, mock_response="ok")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_multiprocessing_worker_lands_its_last_calls(llmtop_db: Path) -> None:
    """A fork-started multiprocessing worker ends in os._exit, past atexit: its calls of the
    last 250 ms (all 100 of a quick task) never landed, and nothing counted them."""
    import multiprocessing as mp

    c = register(Collector(db=llmtop_db))
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_mp_work, args=(100,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    c.flush(10)
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 300


POOL_SCRIPT = """
import os, sys, signal, multiprocessing as mp
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
from llmtop.collector import Collector
import litellm
from llmtop.collector.registry import install_sigterm_flush
litellm.callbacks = [Collector(db=sys.argv[1])]
install_sigterm_flush()  # a plain script's main process: SIGTERM flushes, then kills
MSG = [{"role": "user", "content": "hi"}]
def work(i):
    litellm.completion(model="gpt-4o-mini", messages=MSG, mock_response="ok")
    return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
if __name__ == "__main__":
    work(0)
    ctx = mp.get_context("fork")
    for _ in range(5):
        with ctx.Pool(3) as p:  # ends in terminate(): SIGTERM to every worker
            assert all(p.map(work, range(12))), "a worker kept the parent's SIGTERM handler"
    p = ctx.Pool(3)
    p.map(work, range(12))
    p.close()
    p.join()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_pool_that_terminates_its_workers_ends(llmtop_db: Path, tmp_path: Path) -> None:
    """`with Pool(...)` ends in terminate(), SIGTERM to its workers. A worker that inherited
    the parent's Python SIGTERM handler and waited on the task queue's lock never ran it (the
    handler runs when the main thread is back in Python), and the pool's exit hung for good.
    Workers die of SIGTERM at once, as without llmtop; close() and join() keep every row."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    r = subprocess.run(
        [sys.executable, str(script), str(llmtop_db)],
        capture_output=True,
        text=True,
        timeout=120,  # a hang is a failure, not a wait
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # close() and join(): the workers exit, and their last batches are written.
    n = scalar(llmtop_db, "SELECT count(*) FROM calls")
    assert n >= 1 + 12, n


# --- garbage in ----------------------------------------------------------------------------------

MALFORMED: list[Any] = [
    None,
    "not a dict",
    42,
    {"litellm_params": {"metadata": [1, 2, 3]}},  # metadata not a mapping
    {"litellm_params": "x"},
    {"standard_logging_object": "garbage"},  # and no start time anywhere
    {"standard_logging_object": {}},  # slo missing every field
    {"standard_logging_object": {"startTime": 1.0, "metadata": 5}},
    {"standard_logging_object": {"startTime": 1.0, "request_tags": 7}},
    {"standard_logging_object": {"startTime": "yesterday"}},
]


async def test_malformed_payloads_never_raise_and_are_counted(llmtop_db: Path) -> None:
    w = Writer(llmtop_db, flush_interval=0.01)
    c = with_writer(Collector(db=llmtop_db), w)
    for kwargs in MALFORMED:
        c.log_success_event(kwargs, None, None, None)
        c.log_failure_event(kwargs, object(), "not a time", 3j)
        await c.async_log_success_event(kwargs, None, None, None)
        await c.async_log_failure_event(kwargs, None, None, None)
    # One well-formed (if minimal) payload among them still becomes a row.
    c.log_success_event({"standard_logging_object": {"startTime": 1_700_000_000.0}}, None, 0, 0)
    assert c.flush()
    w.close()
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 1
    assert scalar(
        llmtop_db, "SELECT sum(count) FROM drops WHERE reason = 'malformed payload'"
    ) == 4 * len(MALFORMED)
    assert scalar(llmtop_db, "SELECT count(*) FROM drops WHERE reason != 'malformed payload'") == 0
    # Filed under the app's process, not the sidecar that wrote them.
    assert scalar(llmtop_db, "SELECT group_concat(DISTINCT pid) FROM drops") == str(os.getpid())


# --- permissions ---------------------------------------------------------------------------------


def test_new_database_is_private(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "deeper" / "llmtop.db"
    w = Writer(db, flush_interval=0.01)
    register(with_writer(Collector(db=db), w))
    call(1)
    wait_for(lambda: w.written == 1, "the row")
    w.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.parent.parent.stat().st_mode) == 0o700  # every directory we made
    for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        if side.exists():  # SQLite gives its side files the main file's mode
            assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0


def test_close_waits_out_a_lock_instead_of_losing_rows(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen under four writers on two cores: one was starved of the lock past its busy timeout
    just as its process exited, and its last rows were gone. Closing now keeps retrying a lock
    wait until its own timeout."""
    import threading

    from llmtop.store.records import CallRecord

    monkeypatch.setenv("LLMTOP_BUSY_TIMEOUT_MS", "50")
    monkeypatch.setattr(writer_mod, "RETRY_INTERVAL", 0.05)
    w = Writer(llmtop_db, flush_interval=0.02)
    w.submit(CallRecord(started_at=1.0))
    assert w.flush(5)
    locker = sqlite3.connect(llmtop_db, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(100):
        w.submit(CallRecord(started_at=2.0 + i))
    release = threading.Timer(1.0, lambda: (locker.execute("COMMIT"), locker.close()))
    release.start()
    w.close(timeout=10)
    release.join()
    assert w.written == 101 and w.dropped == 0
    assert scalar(llmtop_db, "SELECT count(*) FROM calls") == 101
