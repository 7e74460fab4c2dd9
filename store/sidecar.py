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
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from llmtop.store.db import busy_timeout_ms
from llmtop.store.records import CallRecord
from llmtop.store.sink import RowsRefused, SqliteSink, StorageError

log = logging.getLogger("llmtop.collector")

#: A record as the tuple of its fields, in declaration order (CallRecord(*t) builds it back).
RECORD_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(CallRecord)))

#: Seconds to wait for the sidecar's answer beyond the database's own lock wait.
ANSWER_MARGIN = 15.0
#: Seconds a new sidecar may take to start (imports) and answer its first batch.
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
    """The host side: same interface as SqliteSink, the work done by a child process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._fresh = False
        #: How many sidecars this sink has started (1 plus restarts).
        self.started = 0

    def _ensure(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self.close()
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmtop.store.sidecar", str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        # One duplex Connection over the two pipe ends (reads stdout, writes stdin).
        rfd, wfd = os.dup(proc.stdout.fileno()), os.dup(proc.stdin.fileno())
        proc.stdout.close()
        proc.stdin.close()
        self._proc = proc
        self._conn = _Duplex(rfd, wfd)
        self._fresh = True
        self.started += 1
        return self._conn

    def write(self, records: Sequence[CallRecord], drops: Sequence[tuple[int, str]] = ()) -> None:
        conn = self._ensure()
        try:
            # Plain tuples pickle ~4x faster than the dataclass (GIL time on the host's side).
            conn.send(("write", [RECORD_FIELDS(r) for r in records], list(drops)))
        except (OSError, EOFError, ValueError) as exc:
            raise self._died() from exc
        except Exception as exc:  # a value pickle cannot carry: the data's fault
            raise RowsRefused(f"{type(exc).__name__}: {exc}") from exc
        wait = busy_timeout_ms() / 1000 + ANSWER_MARGIN + (START_GRACE if self._fresh else 0.0)
        try:
            if not conn.poll(wait):
                self.close()
                raise StorageError(f"{self.path}: the database writer process did not answer")
            reply = conn.recv()
        except (OSError, EOFError) as exc:
            raise self._died() from exc
        self._fresh = False
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
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.close()
        err = StorageError(
            f"{self.path}: the database writer process stopped ({describe_exit(code)}); "
            "starting a new one"
        )
        err.transient = True
        return err

    def idle(self) -> None:
        """The sidecar checkpoints and prunes on its own when no batch arrives."""

    def abandon(self) -> None:
        """In a forked child: drop the parent's pipe ends without touching the parent's sidecar
        (a child holding them open would keep that sidecar alive after the parent exits)."""
        conn, self._conn, self._proc = self._conn, None, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()  # EOF: the sidecar finishes and exits
        if proc is not None:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
    if len(args) != 1:
        print("usage: python -m llmtop.store.sidecar PATH", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # The protocol owns the original stdout; anything printed goes to stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    inbox = Connection(0, writable=False)
    outbox = Connection(out_fd, readable=False)
    collect = _Collect()
    log.addHandler(collect)
    log.setLevel(logging.INFO)
    log.propagate = False
    sink = SqliteSink(args[0])
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
                sink.write([CallRecord(*t) for t in msg[1]], msg[2])
                reply: tuple[object, ...] = ("ok",)
            except RowsRefused as exc:
                reply = ("refused", str(exc))
            except StorageError as exc:
                reply = ("storage", str(exc), exc.transient)
            except Exception as exc:  # anything else is this batch's doing: let the host isolate it
                reply = ("refused", f"{type(exc).__name__}: {exc}")
            outbox.send((*reply, collect.items))
            if reply[0] == "ok":
                time.sleep(0)  # let the next message arrive before deciding we are idle
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
