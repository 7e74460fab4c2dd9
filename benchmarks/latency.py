"""Speed to the screen: a call → its row on a real terminal, and a key → its frame, with where the
time goes.

Usage:
    .venv/bin/python benchmarks/latency.py                  # call → screen, 24 calls, idle
    .venv/bin/python benchmarks/latency.py --load           # the same beside a CPU load generator
    .venv/bin/python benchmarks/latency.py --keys           # key → painted, first screen, 1M rows
    .venv/bin/python benchmarks/latency.py --keys --rows 10000000
    .venv/bin/python benchmarks/latency.py --keys --db FILE   # on a database built before

Call → screen (targets: median <= 0.3 s idle, <= 0.5 s loaded): the installed `llmtop` runs in a
private tmux server (160×60) on a fresh database, with LLMTOP_TRACE_LATENCY pointing at a trace
file; a separate process makes real `litellm.completion(mock_response=...)` calls through the
Collector, one at a time, each with a fresh feature name. This process polls the screen with
`tmux capture-pane` every 20 ms until the name is on it, and the database every 2 ms for the
commit. The breakdown joins the app's trace (tui/reading.py) to each call by row id:

    call returned → committed → watcher saw it → read started → read done → widgets updated →
    frame written to the terminal (the app's _display, wrapped when tracing) → seen (capture-pane)

`--load [N]` runs N busy-looping processes (default: one per core) beside it all.

Key → painted (target: p95 <= 100 ms) runs the app headless (Textual's run_test, 160×48) on a
database built by benchmarks/_build.py (cached under $TMPDIR/llmtop-bench), times the first
screen in a fresh process, then presses window keys 1-6, `g` + a grouping, `enter` (drill) and
`esc` (back) in rounds, 0.3 s after each frame settles. "painted" is the first frame drawn with
the asked-for view (from memory when the view was read before); "refined" is the first frame
drawn with a snapshot read after the key. Frames are caught by wrapping the screen's private
_compositor_refresh, as benchmarks/tui.py does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _rss import peak_rss_mb

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = Path(__file__).resolve().parent
TARGET_IDLE_S = 0.3
TARGET_LOADED_S = 0.5
TARGET_KEY_MS = 100.0
TARGET_FIRST_MS = 500.0
SCREEN_POLL = 0.02
SEEN_TIMEOUT = 10.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q * (len(s) - 1))))]


# --- call → screen -------------------------------------------------------------------------------
def caller(db: str) -> int:
    """Child: one real LiteLLM call per feature name read from stdin; prints the return time."""
    import litellm
    from llmtop.collector import Collector

    litellm.callbacks = [Collector(db=db)]
    for line in sys.stdin:
        name = line.strip()
        litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hello"}],
            mock_response="hi there",
            metadata={"feature": name},
        )
        print(time.time(), flush=True)
    return 0


def spinner() -> None:
    while True:
        pass


class Tmux:
    def __init__(self) -> None:
        self.socket = f"llmtop-latency-{os.getpid()}"
        self.tmux = shutil.which("tmux") or "tmux"

    def run(self, *args: str) -> str:
        return subprocess.run(
            [self.tmux, "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout

    def capture(self) -> str:
        return self.run("capture-pane", "-p", "-t", "lat")


def wait_screen(tmux: Tmux, ok: Any, timeout: float = SEEN_TIMEOUT) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok(tmux.capture()):
            return time.time()
        time.sleep(SCREEN_POLL)
    return None


class CommitPoller(threading.Thread):
    """Polls max(id) every 2 ms; `wait(after)` gives (time, id) of the first id above `after`."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seen: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        last = 0
        while not self.halt.wait(0.002):
            try:
                top = conn.execute("SELECT coalesce(max(id), 0) FROM calls").fetchone()[0]
            except sqlite3.Error:
                continue
            if top > last:
                self.seen.append((time.time(), top))
                last = top

    def first_above(self, after: int, timeout: float = SEEN_TIMEOUT) -> tuple[float, int] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, i in self.seen:
                if i > after:
                    return t, i
            time.sleep(0.002)
        return None


def call_to_screen(calls: int, load: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="llmtop-latency-"))
    db, trace_path = tmp / "lat.db", tmp / "trace.jsonl"
    llmtop = Path(sys.executable).parent / "llmtop"
    env = {
        "LLMTOP_DB": str(db),
        "LLMTOP_STATE": str(tmp / "ui.json"),
        "LLMTOP_TRACE_LATENCY": str(trace_path),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    tmux = Tmux()
    spinners: list[subprocess.Popen[bytes]] = []
    child: subprocess.Popen[str] | None = None
    poller = CommitPoller(db)
    rows: list[dict[str, float | None]] = []
    try:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--caller", str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **env, "LLMTOP_TRACE_LATENCY": ""},
        )
        assert child.stdin is not None and child.stdout is not None
        for _ in range(load):
            spinners.append(
                subprocess.Popen([sys.executable, "-c", "while True: pass"])  # noqa: S603
            )

        def call(name: str) -> float:
            assert child is not None and child.stdin is not None and child.stdout is not None
            child.stdin.write(name + "\n")
            child.stdin.flush()
            return float(child.stdout.readline())

        call("warm-up")  # imports, the writer's sidecar, the database and its first rows
        deadline = time.monotonic() + 30
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        poller.start()
        warm = poller.first_above(0, 30)
        tmux.run(
            "new-session", "-d", "-s", "lat", "-x", "160", "-y", "60",
            *(a for k, v in env.items() for a in ("-e", f"{k}={v}")),
            f"{llmtop} --db {db}; sleep 30",
        )  # fmt: skip
        if warm is None or wait_screen(tmux, lambda s: "warm-up" in s, 60) is None:
            print("the warm-up call never showed:\n" + tmux.capture())
            return 1
        last_id = warm[1]
        time.sleep(2.5)  # the app's first alert pass (right after the warm-up's frame) ends
        rng = random.Random(7)
        for i in range(calls):
            name = f"lat{i:02d}-{rng.randrange(16**4):04x}"
            ret = call(name)
            seen = wait_screen(tmux, lambda s, n=name: n in s)
            commit = poller.first_above(last_id)
            if commit is not None:
                last_id = commit[1]
            rows.append(
                {
                    "ret": ret,
                    "commit": commit[0] if commit else None,
                    "id": commit[1] if commit else None,
                    "screen": seen,
                }
            )
            time.sleep(rng.uniform(0.3, 0.6))
    finally:
        poller.halt.set()
        for p in spinners:
            p.kill()
        if child is not None:
            child.kill()
        tmux.run("kill-server")
    return report_calls(rows, trace_path, load)


def report_calls(rows: list[dict[str, Any]], trace_path: Path, load: int) -> int:
    events = (
        [json.loads(x) for x in trace_path.read_text().splitlines()] if trace_path.exists() else []
    )
    by = {
        e: [x for x in events if x["e"] == e]
        for e in ("watch", "read_start", "read_done", "widgets", "painted")
    }
    starts = {x["seq"]: x["t"] for x in by["read_start"]}
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    totals: list[float] = []
    missed = 0
    prev_screen = 0.0
    for r in rows:
        if r["screen"] is None or r["id"] is None:
            missed += 1
            continue
        totals.append(r["screen"] - r["ret"])
        x = r["id"]
        done = next((e for e in by["read_done"] if e["max_id"] >= x and not e.get("ahead")), None)
        widgets = next((e["t"] for e in by["widgets"] if e["max_id"] >= x), None)
        painted = next((e["t"] for e in by["painted"] if e["max_id"] >= x), None)
        start = starts.get(done["seq"]) if done else None
        watch = next(
            (e["t"] for e in by["watch"] if e["t"] > max(prev_screen, r["ret"] - 0.5)), None
        )
        marks = [
            r["ret"],
            r["commit"],
            watch,
            start,
            done["t"] if done else None,
            widgets,
            painted,
            r["screen"],
        ]
        for name, a, b in zip(STAGES, marks, marks[1:], strict=False):
            if a is not None and b is not None:
                stages[name].append(b - a)
        prev_screen = r["screen"]
    what = f"beside {load} busy-looping processes" if load else "no load generator"
    print(
        f"\ncall → screen, {len(rows)} calls, tmux 160×60, {what} ({os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.1f} at the end)"
    )
    if not totals:
        print("no call reached the screen")
        return 1
    target = TARGET_LOADED_S if load else TARGET_IDLE_S
    med = statistics.median(totals)
    mark = "ok " if med <= target else "SLOW"
    print(
        f"  call returned → on screen: median {med * 1000:.0f} ms, p95 {pct(totals, 0.95) * 1000:.0f} ms,"
        f" max {max(totals) * 1000:.0f} ms  [{mark} target median ≤ {target * 1000:.0f} ms]"
    )
    if missed:
        print(f"  {missed} calls never showed within {SEEN_TIMEOUT:.0f} s")
    print("  breakdown (median / p95 ms; each stage from the mark before it):")
    for name in STAGES:
        v = stages[name]
        if v:
            print(
                f"    {name:32s} {statistics.median(v) * 1000:7.1f} / {pct(v, 0.95) * 1000:7.1f}   (n={len(v)})"
            )
        else:
            print(f"    {name:32s}     n/a")
    return 0


STAGES = (
    "call returned → committed",
    "committed → watcher saw it",
    "watcher → read started",
    "read started → read done",
    "read done → widgets updated",
    "widgets → frame written",
    "written → seen in tmux (20 ms polls)",
)


# --- key → painted --------------------------------------------------------------------------------
async def keys_child(path: Path, end: float, rounds: int) -> dict[str, Any]:
    from llmtop.tui.app import LlmtopApp
    from textual.screen import Screen

    shift = time.time() - end - 1.0

    def clock() -> float:
        return time.time() - shift

    #: (predicate over the dashboard, times of frames drawn while it held)
    want: list[Any] = []
    frames: list[tuple[str, float]] = []
    #: Set on every frame recorded: the waits below sleep on it instead of polling, since a
    #: poll every millisecond takes the GIL from the app's reader thread (the snapshot is read
    #: in a worker thread; each row fetched hands the GIL back and forth).
    seen = asyncio.Event()
    draw = Screen._compositor_refresh

    def drawn(screen: Screen[Any]) -> None:
        draw(screen)
        if not want:
            return
        d = app.dashboard
        snap = d.snapshot
        # A frame drawn before the key was handled still shows the old view: not this one.
        if snap is None or not d.shows(snap) or (d.view, d.window) == want[1]:
            return
        t = time.perf_counter()
        if not any(k == "painted" for k, _ in frames):
            frames.append(("painted", t))
            seen.set()
        if snap.now >= want[0] and not any(k == "refined" for k, _ in frames):
            frames.append(("refined", t))
            seen.set()

    async def until(kind: str, timeout: float = 60.0) -> float | None:
        deadline = time.perf_counter() + timeout
        while True:
            for k, t in frames:
                if k == kind:
                    return t
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            seen.clear()
            try:
                await asyncio.wait_for(seen.wait(), left)
            except TimeoutError:
                return None

    Screen._compositor_refresh = drawn  # type: ignore[method-assign]
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    app = LlmtopApp(path, clock=clock, watch=False, alerts=False)
    async with app.run_test(size=(160, 48)) as pilot:
        want[:] = [0.0, None]
        f = await until("refined")
        out["first_screen_ms"] = (f - t0) * 1000 if f else None
        d = app.dashboard
        idle = time.perf_counter() + 60
        while (d.reads.loading or d.reads.ahead) and time.perf_counter() < idle:
            await asyncio.sleep(0.01)
        out["ahead_done_ms"] = (time.perf_counter() - t0) * 1000
        painted: dict[str, list[float]] = {}
        refined: dict[str, list[float]] = {}

        async def press(kind: str, *keys: str) -> None:
            *before, last = keys
            if before:
                await pilot.press(*before)
                await pilot.pause()
            frames.clear()
            want[:] = [clock(), (d.view, d.window)]
            t = time.perf_counter()
            await pilot.press(last)
            p, r = await until("painted"), await until("refined")
            painted.setdefault(kind, []).append((p - t) * 1000 if p else float("inf"))
            refined.setdefault(kind, []).append((r - t) * 1000 if r else float("inf"))
            want.clear()
            await asyncio.sleep(0.3)

        for _ in range(rounds):
            for i, name in enumerate(("5m", "1h", "6h", "24h", "7d", "30d")):
                await press(f"window {name}", str(i + 1))
            await press("window 1h", "2")
            await pilot.press("g")
            await pilot.pause()
            picker: Any = app.screen  # the group picker, with its own list of dimensions
            target = "model" if picker.current != "model" else "feature"
            step = picker.dimensions.index(target) - picker.dimensions.index(picker.current)
            await press("group", *(["down" if step > 0 else "up"] * abs(step)), "enter")
            await press("back", "escape")
            await press("drill", "enter")
            await press("back", "escape")
        out["painted"] = painted
        out["refined"] = refined
    out["peak_mb"] = peak_rss_mb()
    return out


def keys(rows: int, rounds: int, cache: Path, db: Path | None) -> int:
    if db is not None:  # a database built before (e.g. _build's 10M file with tasks)
        path = db
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        end, rows = conn.execute("SELECT max(started_at), count(*) FROM calls").fetchone()
        conn.close()
    else:
        sys.path.insert(0, str(HERE))
        from _build import build, cached_path

        path = cached_path(cache, rows)
        end = build(path, rows).end
    firsts, res = [], None
    for i in range(3):
        r = run_child(path, end, rounds if i == 0 else 0)
        firsts.append(r["first_screen_ms"])
        res = res or r
    assert res is not None
    print(
        f"\nkey → painted, {rows:,} rows, headless 160×48, {rounds} rounds"
        f" ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})"
    )
    ok = [f for f in firsts if f is not None]
    med = statistics.median(ok) if ok else None
    print(
        f"  first screen: median {med:,.0f} ms of {len(firsts)} fresh starts"
        f" ({min(ok):,.0f}–{max(ok):,.0f})  [{'ok ' if med and med <= TARGET_FIRST_MS else 'SLOW'}"
        f" target ≤ {TARGET_FIRST_MS:.0f} ms]"
    )
    print(
        f"  every view read ahead (other windows, likely drills and groupings)"
        f" {res['ahead_done_ms'] / 1000:.1f} s after start"
    )
    if res.get("peak_mb"):
        print(f"  peak memory of the app's process after the keys: {res['peak_mb']:.0f} MB")
    every: list[float] = []
    for kind, v in res["painted"].items():
        r = res["refined"][kind]
        every.extend(v)
        print(
            f"  {kind:12s} painted median {statistics.median(v):6.1f} ms, p95 {pct(v, 0.95):6.1f}"
            f"  | refined median {statistics.median(r):6.1f} ms, p95 {pct(r, 0.95):6.1f}  (n={len(v)})"
        )
    if not every:  # --rounds 0: first screens only
        return 0
    p95 = pct(every, 0.95)
    print(
        f"  every key: painted p95 {p95:.1f} ms  [{'ok ' if p95 <= TARGET_KEY_MS else 'SLOW'}"
        f" target ≤ {TARGET_KEY_MS:.0f} ms]"
    )
    return 0


def run_child(path: Path, end: float, rounds: int) -> dict[str, Any]:
    state = Path(tempfile.gettempdir()) / f"llmtop-latency-state-{os.getpid()}.json"
    state.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--keys-child",
            str(path),
            str(end),
            str(rounds),
        ],
        env={**os.environ, "LLMTOP_STATE": str(state)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--caller"]:
        return caller(argv[1])
    if argv[:1] == ["--keys-child"]:
        res = asyncio.run(keys_child(Path(argv[1]), float(argv[2]), int(argv[3])))
        print("RESULT " + json.dumps(res))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=24)
    p.add_argument(
        "--load",
        type=int,
        nargs="?",
        const=os.cpu_count() or 2,
        default=0,
        help="busy-looping processes beside the run (default with the flag: one per core)",
    )
    p.add_argument("--keys", action="store_true", help="key → painted and first screen instead")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "llmtop-bench")
    p.add_argument("--db", type=Path, help="--keys on this database instead of a built one")
    ns = p.parse_args(argv)
    if ns.keys:
        return keys(ns.rows, ns.rounds, ns.cache, ns.db)
    if shutil.which("tmux") is None:
        print("tmux is not installed")
        return 1
    return call_to_screen(ns.calls, ns.load)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
