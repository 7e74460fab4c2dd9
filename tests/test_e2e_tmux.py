"""End to end: the installed `llmtop` command in a real terminal (tmux), on a demo database.

Pilot tests drive the App object inside pytest's process; they cannot see a broken entry point,
a terminal driver problem, an exception at import time outside the app, or a quit that hangs.
Here the console script is launched exactly as a user would, and we read the screen back with
`capture-pane`.

Every wait is a readiness poll with a generous ceiling; nothing asserts how long anything took.
The tmux server is private (`-L <unique>`, `-f /dev/null`) and always killed in `finally`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")

WIDTH, HEIGHT = 120, 36
READY_TIMEOUT = 20.0
POLL = 0.2


def llmtop_command() -> str:
    """The installed console script: the venv's own first, so a stray global one is not used."""
    beside = Path(sys.executable).parent / "llmtop"
    if beside.exists():
        return str(beside)
    found = shutil.which("llmtop")
    if found is None:
        pytest.fail("the llmtop entry point is not installed (pip install -e .)")
    return found


class Tmux:
    """A private tmux server holding one session; every command goes to that socket only."""

    def __init__(self, socket: str, session: str) -> None:
        self.socket = socket
        self.session = session

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )

    def capture(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).stdout

    def send(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def pane(self, fmt: str) -> str:
        """A pane format variable; '' once the session (and so the pane) is gone."""
        out = self.run("display-message", "-p", "-t", self.session, fmt, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    def kill(self) -> None:
        self.run("kill-server", check=False)


def wait_for(what: str, tmux: Tmux, ok: Callable[[str], bool]) -> str:
    """Poll the screen until ok(screen); on timeout fail with the last screen for diagnosis."""
    deadline = time.monotonic() + READY_TIMEOUT
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux.capture()
        if ok(screen):
            return screen
        if tmux.pane("#{pane_dead}") == "1":
            break
        time.sleep(POLL)
    pytest.fail(f"never saw {what}; last screen:\n{screen}")


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    """A demo database made by the installed command itself (history plus a few live seconds)."""
    db = tmp_path / "demo.db"
    env = {**os.environ, "LLMTOP_DB": str(db), "LLMTOP_STATE": str(tmp_path / "ui-state.json")}
    proc = subprocess.run(
        [llmtop_command(), "demo", "--no-tui", "--duration", "3s", "--history", "1d"]
        + ["--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert db.exists()
    return db


@pytest.fixture
def tmux_session(tmp_path: Path, demo_db: Path) -> Iterator[Tmux]:
    """llmtop running in a detached 120×36 tmux pane; the pane is kept after exit for its status.

    Textual draws through stderr, so the pane must own both streams: nothing is redirected.
    """
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmux = Tmux(socket=f"llmtop-e2e-{tag}", session="llmtop")
    env = {"LLMTOP_DB": str(demo_db), "LLMTOP_STATE": str(tmp_path / "ui-state.json")}
    try:
        tmux.run(
            "new-session",
            "-d",
            "-s",
            tmux.session,
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            *(arg for k, v in env.items() for arg in ("-e", f"{k}={v}")),
            "-c",
            str(tmp_path),
            # The shell reports llmtop's exit status on screen once the app has left it.
            f"{shlex.quote(llmtop_command())}; echo llmtop-exit=$?; sleep 60",
        )
        yield tmux
    finally:
        tmux.kill()


def top_feature(screen: str) -> str:
    """The first data row under the table header, i.e. where the cursor starts."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*feature\s+spend\s", line):
            return lines[i + 1].split()[0]
    raise AssertionError(f"no feature table on screen:\n{screen}")


def test_dashboard_drill_down_and_quit(tmux_session: Tmux) -> None:
    """Start, see the dashboard, drill into the top feature, quit cleanly with status 0."""
    tmux = tmux_session

    def dashboard(screen: str) -> bool:
        return "Burn rate" in screen and "grouped by feature" in screen and "requests ·" in screen

    screen = wait_for("the dashboard", tmux, dashboard)
    assert "Burn rate" in screen
    assert re.search(r"^\s*(chat|classify|agent-step|embed|support-summarize)\s+\$", screen, re.M)
    assert "demo.db" in screen  # the top bar names the database that was opened
    feature = top_feature(screen)

    tmux.send("Enter")
    screen = wait_for(
        f"the drill-down into {feature}",
        tmux,
        lambda s: f"feature={feature}" in s and "grouped by model" in s,
    )
    assert f"all › feature={feature}" in screen
    assert re.search(r"^\s*model\s+spend\s", screen, re.M)

    tmux.send("q")
    screen = wait_for("llmtop to exit", tmux, lambda s: "llmtop-exit=" in s)
    status = re.search(r"llmtop-exit=(\d+)", screen)
    assert status and status.group(1) == "0", f"llmtop did not exit cleanly:\n{screen}"
    assert "Traceback" not in tmux.capture()


# --- the on-call's walk: an alert appears, is read whole, acked, and stays acked ----------------

ALERT_RULES = """
[spike]
group_by = ["feature"]
window = "5m"
trailing = "2h"
ratio = 3.0
min_change_usd = 0.05

[owners]
"feature=support-summarize" = "team-support"
"""


@pytest.fixture
def incident_db(tmp_path: Path) -> Path:
    """Two quiet hours of two features up to the wall clock's now, then support-summarize's
    prompt v2 with 10x the input tokens in the last four minutes (written through the real
    collector; the dashboard in tmux runs on the real clock)."""
    from llmtop.alerts.rules import default_rules_path

    from tests.builders import payload, prompt_v2_ships, write

    db = tmp_path / "incident.db"
    now = time.time()
    rows, t = [], now - 7200
    while t < now - 300:
        for feat in ("chat", "support-summarize"):
            rows.append(payload(start=t, feature=feat, team="support", prompt_version="v1"))
        t += 30
    write(db, rows + prompt_v2_ships(now))
    default_rules_path(db).write_text(ALERT_RULES)
    return db


def _alert_passes(db: Path) -> float:
    """When the last alert pass recorded its alerts (the alerts table's newest last_seen)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return float(con.execute("SELECT coalesce(max(last_seen), 0) FROM alerts").fetchone()[0])
    except sqlite3.OperationalError:  # no alerts table yet
        return 0.0
    finally:
        con.close()


def test_alert_detail_ack_and_check(tmp_path: Path, incident_db: Path) -> None:
    """alert appears → open its detail → ack there → it stays acked across two alert passes,
    and `llmtop check` (which honours acks) does not page for it; `--all` still lists it."""
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmux = Tmux(socket=f"llmtop-e2e-{tag}", session="llmtop")
    env = {"LLMTOP_DB": str(incident_db), "LLMTOP_STATE": str(tmp_path / "ui-state.json")}
    try:
        tmux.run(
            "new-session",
            "-d",
            "-s",
            tmux.session,
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            *(arg for k, v in env.items() for arg in ("-e", f"{k}={v}")),
            "-c",
            str(tmp_path),
            f"{shlex.quote(llmtop_command())}; echo llmtop-exit=$?; sleep 60",
        )
        screen = wait_for(
            "the alert", tmux, lambda s: "Alerts" in s and "feature=support-summarize" in s
        )
        assert "team-support" in screen  # owner, on the panel's line at 120 columns

        tmux.send("a")  # the alerts list takes the keys: its footer offers ack
        wait_for("the alerts list focused", tmux, lambda s: "k Ack" in s)
        tmux.send("Enter")
        screen = wait_for(
            "the alert's detail",
            tmux,
            lambda s: "Likely causes" in s and "Rule spike" in s and "Last 5m:" in s,
        )
        assert "prompt_version" in screen and "v2" in screen
        assert "Owner team-support" in screen

        tmux.send("k")  # ack, from the detail screen
        wait_for("the ack", tmux, lambda s: " acked " in s and "Likely causes" not in s)
        first = _alert_passes(incident_db)
        for n in (1, 2):  # two more alert passes (one every 10 s) leave it acked
            deadline = time.monotonic() + 60
            while _alert_passes(incident_db) <= first and time.monotonic() < deadline:
                time.sleep(POLL)
            assert _alert_passes(incident_db) > first, f"no alert pass {n} within a minute"
            first = _alert_passes(incident_db)
        screen = tmux.capture()
        assert " acked " in screen and "feature=support-summarize" in screen, screen

        check = subprocess.run(
            [llmtop_command(), "check", "--db", str(incident_db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stdout + check.stderr  # acked: nothing to page
        every = subprocess.run(
            [llmtop_command(), "check", "--all", "--db", str(incident_db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "support-summarize" in every.stdout, every.stdout + every.stderr
        assert "acked" in every.stdout, every.stdout  # the dashboard's ack, as check shows it

        tmux.send("q")
        screen = wait_for("llmtop to exit", tmux, lambda s: "llmtop-exit=" in s)
        assert "llmtop-exit=0" in screen and "Traceback" not in screen
    finally:
        tmux.kill()
