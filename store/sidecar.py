"""The collector's SQLite I/O in a process of its own, so the database can never take the host down.

Why a process: SQLite maps the `-shm` file into memory; if anything truncates that file while a
connection is open, the next access raises SIGBUS, which kills whatever process made it. Python
cannot catch that. With the I/O here, a broken file kills this sidecar; the host's writer notices
(the pipe closes), keeps the batch it was writing, logs one line and starts a new sidecar.

The host's hooks are untouched by this: they still only append to an in-memory queue. The writer
thread maps and prices, then sends each batch here as one pickled message over a pipe
(`multiprocessing.connection.Connection`: length-prefixed frames) and waits for the answer:
`ok`, `refused` (a data problem: the writer splits the batch) or `storage` (retry later).

The sidecar lives exactly as long as its pipe: when the host exits or dies, stdin reaches EOF and
the sidecar closes the database and exits. It ignores SIGINT and SIGTERM (a Ctrl-C or a stop sent
to the whole process group must not kill it before the host's last batch arrives) and runs in its
own session. Run as `python -m llmtop.store.sidecar PATH`.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import signal
import subprocess
import sys
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from llmtop.store.db import busy_timeout_ms
from llmtop.store.records import CallRecord
from llmtop.store.sink import RowsRefused, SqliteSink, StorageError

log = logging.getLogger("llmtop.collector")

#: A record as the tuple of its fields, in declaration order (CallRecord(*t) builds it back).
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CallRecord))
RECORD_FIELDS = operator.attrgetter(*FIELD_NAMES)
#: Sidecars that die before saying hello, in a row, before writing in-process instead.
START_FAILURES = 3


def records_from(names: Sequence[str], rows: Sequence[tuple[object, ...]]) -> list[CallRecord]:
    """Tuples back into records; by name when the host's llmtop has other fields than ours."""
    if tuple(names) == FIELD_NAMES:
        return [CallRecord(*t) for t in rows]
    known = set(FIELD_NAMES)
    keep = [(i, n) for i, n in enumerate(names) if n in known]
    return [CallRecord(**{n: t[i] for i, n in keep}) for t in rows]  # type: ignore[arg-type]


#: Seconds to wait for the sidecar's answer beyond the database's own lock wait.
ANSWER_MARGIN = 15.0
#: Seconds a new sidecar may take to start (imports) and say hello.
START_GRACE = 30.0


def sidecar_usable() -> bool:
    """A sidecar needs a Python interpreter to start (embedded hosts such as uWSGI have none)."""
    exe = os.path.basename(sys.executable or "")
    return bool(exe) and ("python" in exe or "pypy" in exe) and os.access(sys.executable, os.X_OK)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class SidecarSink:
    """The host side: same interface as SqliteSink, the work done by a child process.

    If sidecars keep dying before they say hello (an interpreter that cannot import llmtop, a
    host out of processes), after START_FAILURES in a row this sink writes in-process instead,
    with one log line: recording matters more than isolation.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: _Duplex | None = None
        self._failed_starts = 0
        self._fallback: SqliteSink | None = None
        #: How many sidecars this sink has started (1 plus restarts).
        self.started = 0
        _live.add(self)

    @property
    def pid(self) -> int | None:
        """The running sidecar's process id (what an operator sees in `ps`), or None."""
        return self._proc.pid if self._proc is not None else None

    def _ensure(self) -> _Duplex:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self.close(0.5)
        rfd, child_wfd = os.pipe()  # answers come on a pipe of their own, never stdout
        env = dict(os.environ)
        # The child must import this llmtop however the host found it (a zipapp, a path hack).
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in sys.path if p] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "llmtop.store.sidecar", str(self.path), str(child_wfd)],
                stdin=subprocess.PIPE,
                # Not the host's stdout/stderr: a supervisor waiting for them to close must not
                # wait for the sidecar too. Its log lines travel with its answers; how it ended
                # (a signal, an exit status) is in the host's log line when it dies.
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(child_wfd,),
                start_new_session=True,
                env=env,
            )
        except OSError as exc:  # out of processes or fds, the interpreter gone after a redeploy
            os.close(rfd)
            os.close(child_wfd)
            self._failed_starts += 1
            raise StorageError(
                f"{self.path}: cannot start the database writer process ({exc})"
            ) from exc
        os.close(child_wfd)
        assert proc.stdin is not None
        wfd = os.dup(proc.stdin.fileno())
        proc.stdin.close()
        self._proc = proc
        self._conn = conn = _Duplex(rfd, wfd)
        self.started += 1
        try:
            ready = conn.poll(START_GRACE)
            hello = conn.recv() if ready else None
        except Exception:
            hello = None
        if not (isinstance(hello, tuple) and hello[:1] == ("hello",)):
            code = self._stop()
            self._failed_starts += 1
            raise StorageError(
                f"{self.path}: the database writer process did not start ({describe_exit(code)})"
            )
        self._failed_starts = 0
        return conn

    def write(
        self,
        records: Sequence[CallRecord],
        drops: Sequence[tuple[int, str]] = (),
        timeout: float | None = None,
    ) -> None:
        if self._fallback is None and self._failed_starts >= START_FAILURES:
            log.warning(
                "llmtop: the database writer process could not be started %d times; writing"
                " to %s in-process from now on",
                self._failed_starts,
                self.path,
            )
            self._fallback = SqliteSink(self.path)
        if self._fallback is not None:
            self._fallback.write(records, drops, timeout)
            return
        conn = self._ensure()
        try:
            # Plain tuples pickle ~4x faster than the dataclass (GIL time on the host's side);
            # the field names travel along, so a sidecar of another llmtop version still reads
            # them right.
            conn.send(("write", FIELD_NAMES, [RECORD_FIELDS(r) for r in records], list(drops)))
        except (OSError, EOFError, ValueError) as exc:
            raise self._died() from exc
        except Exception as exc:  # a value pickle cannot carry: the data's fault
            raise RowsRefused(f"{type(exc).__name__}: {exc}") from exc
        wait = busy_timeout_ms() / 1000 + ANSWER_MARGIN if timeout is None else timeout
        try:
            if not conn.poll(wait):
                self._stop()
                raise StorageError(f"{self.path}: the database writer process did not answer")
            reply = conn.recv()
        except StorageError:
            raise
        except Exception as exc:  # EOF, a broken pipe, a garbled frame: it is gone
            raise self._died() from exc
        for level, message in reply[-1]:
            log.log(level, message)
        if reply[0] == "ok":
            return
        if reply[0] == "refused":
            raise RowsRefused(reply[1])
        err = StorageError(reply[1])
        err.transient = bool(reply[2])
        raise err

    def _died(self) -> StorageError:
        code = self._stop()
        err = StorageError(
            f"{self.path}: the database writer process stopped ({describe_exit(code)}); "
            "starting a new one"
        )
        err.transient = True
        return err

    def _stop(self, wait: float = 2.0) -> int | None:
        """Close the pipes, then reap the process (killed if it does not go in `wait`)."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def idle(self) -> None:
        """The sidecar checkpoints and prunes on its own; here a dead one is reaped."""
        if self._proc is not None and self._proc.poll() is not None:
            code = self._stop(0.0)
            # Between batches nothing was in flight, but a sidecar that keeps dying (an OOM
            # killer, an operator's kill) must not go unnoticed.
            log.warning(
                "llmtop: %s: the database writer process stopped between batches (%s); a new"
                " one starts with the next batch, nothing was lost",
                self.path,
                describe_exit(code),
            )
        if self._fallback is not None:
            self._fallback.idle()

    def abandon(self) -> None:
        """In a forked child: drop the parent's pipe ends without touching the parent's sidecar
        (a child holding them open would keep that sidecar alive after the parent exits)."""
        conn, self._conn, self._proc = self._conn, None, None
        if conn is not None:
            conn.close()

    def close(self, timeout: float | None = None) -> None:
        """EOF to the sidecar, which finishes and exits; wait for it at most `timeout` (it exits
        by itself after that: a process on its way out need not wait for it)."""
        if self._fallback is not None:
            self._fallback.close()
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()
        if proc is not None:
            try:
                proc.wait(timeout=5.0 if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                pass


#: Every sidecar sink of this process, so a forked child can let go of all their pipes.
_live: weakref.WeakSet[SidecarSink] = weakref.WeakSet()


def _abandon_all_in_child() -> None:
    for sink in list(_live):
        try:
            sink.abandon()
        except Exception:
            pass


os.register_at_fork(after_in_child=_abandon_all_in_child)


class _Duplex:
    """Two one-way Connections (read end, write end) as one."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self._r = Connection(rfd, writable=False)
        self._w = Connection(wfd, readable=False)

    def send(self, obj: object) -> None:
        self._w.send(obj)

    def poll(self, timeout: float) -> bool:
        return self._r.poll(timeout)

    def recv(self) -> object:
        return self._r.recv()

    def close(self) -> None:
        for c in (self._w, self._r):
            try:
                c.close()
            except OSError:
                pass


class _Collect(logging.Handler):
    """Log records of one request, sent back with its answer for the host's logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.items: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.items.append((record.levelno, record.getMessage()))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m llmtop.store.sidecar PATH ANSWER_FD", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    inbox = Connection(0, writable=False)
    outbox = Connection(int(args[1]), readable=False)
    collect = _Collect()
    log.addHandler(collect)
    log.setLevel(logging.INFO)
    log.propagate = False
    sink = SqliteSink(args[0], pid=os.getppid())  # drops are the host app's
    outbox.send(("hello", os.getpid()))
    try:
        while True:
            try:
                ready = inbox.poll(0.25)
            except (OSError, EOFError):
                break
            if not ready:
                sink.idle()
                continue
            try:
                msg = inbox.recv()
            except (OSError, EOFError):
                break
            collect.items = []
            if msg[0] != "write":
                continue
            try:
                sink.write(records_from(msg[1], msg[2]), msg[3])
                reply: tuple[object, ...] = ("ok",)
            except RowsRefused as exc:
                reply = ("refused", str(exc))
            except StorageError as exc:
                reply = ("storage", str(exc), exc.transient)
            except Exception as exc:  # anything else is this batch's doing: let the host isolate it
                reply = ("refused", f"{type(exc).__name__}: {exc}")
            outbox.send((*reply, collect.items))
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
