"""A real, throwaway PostgreSQL server for tests and benchmarks (no mocks of the second backend).

Why a server of our own rather than a shared one: tests must run offline in CI, as root, and
leave nothing behind. initdb refuses to run as root, so as root the cluster belongs to the
`postgres` user (runuser); the data directory lives in a short mkdtemp under /tmp because a unix
socket path must stay under 107 bytes and pytest's 0700 temp dirs are closed to that user.
`fsync=off`: the tests exercise behaviour, not durability.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _bindir() -> Path | None:
    """Where initdb and pg_ctl live: $LLMTOP_PG_BINDIR, `pg_config --bindir`, then the newest
    /usr/lib/postgresql/<ver>/bin."""
    env = os.environ.get("LLMTOP_PG_BINDIR")
    if env:
        return Path(env)
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        if out and (Path(out) / "pg_ctl").exists():
            return Path(out)
    except (OSError, subprocess.SubprocessError):
        pass
    base = Path("/usr/lib/postgresql")
    found = sorted(
        (p / "bin" for p in base.glob("*") if (p / "bin" / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One cluster: start(), url(dbname), create_database(), stop(), restart()."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.dir: Path | None = None
        self.port = 0
        self.running = False
        self._as: list[str] = []

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None
        cmd = [*self._as, str(self.bindir / args[0]), *args[1:]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        """Initialise and start; RuntimeError with the reason when that is impossible here."""
        if self.bindir is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no pg_ctl; apt-get install postgresql)"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="llpg", dir="/tmp"))
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL")
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        data = self.dir / "data"
        r = self._run(
            "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
            "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr.strip()[-400:]}")
        self._start()

    def _start(self) -> None:
        assert self.dir is not None
        opts = (
            f"-k {self.dir} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        r = self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
            "-o", opts, "start",
        )  # fmt: skip
        if r.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace")[-400:] if self.dir else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr.strip()[-300:]} {log}")
        self.running = True

    def stop(self) -> None:
        if self.dir is not None and self.running:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
            self.running = False

    def restart(self) -> None:
        self._start()

    def destroy(self) -> None:
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def require_postgres() -> bool:
    """Whether a Postgres test that cannot run must fail (CI) rather than skip (a laptop)."""
    return os.environ.get("LLMTOP_REQUIRE_POSTGRES", "") not in ("", "0")


# --- pytest fixtures (conftest.py imports these) -------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> object:
    """One server for the session; skipped with the reason locally, an error in CI."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        reason = "psycopg is not installed (pip install 'llmtop[postgres]')"
        if require_postgres():
            pytest.fail(f"LLMTOP_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    server = PgServer()
    try:
        server.start()
    except RuntimeError as exc:
        server.destroy()
        if require_postgres():
            pytest.fail(f"LLMTOP_REQUIRE_POSTGRES=1 but no PostgreSQL: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh empty database on the session's server (60-100 ms)."""
    if not pg_server.running:  # a test stopped it and failed before restarting it
        pg_server.restart()
    return pg_server.create_database()
