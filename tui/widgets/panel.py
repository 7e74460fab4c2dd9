"""A bordered stat panel: a few lines of figures and an optional sparkline.

Reusable, so it carries DEFAULT_CSS; the concrete panels only say what to print.
"""

from __future__ import annotations

from llmtop.store.views import Snapshot
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Sparkline, Static


class Panel(Vertical):
    DEFAULT_CSS = """
    Panel {
        border: round $primary 60%;
        border-title-color: $text;
        border-title-style: bold;
        padding: 0 1;
        height: auto;
    }
    Panel > .panel-body { height: auto; }
    Panel > Sparkline { height: 1; margin-top: 0; }
    """
    TITLE = ""
    SPARK = False

    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)  # the body repaints
    _shown: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="panel-body")
        if self.SPARK:
            yield Sparkline([], summary_function=max)

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    def on_resize(self) -> None:
        self._paint(self.snapshot)

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        self._paint(snapshot)

    def _paint(self, snapshot: Snapshot | None) -> None:
        if snapshot is None:
            return
        # Unchanged figures are not sent again, and new ones on as many lines as before are
        # sent without a layout: a layout re-renders the whole screen (benchmarks/latency.py).
        body = fit(self.body(snapshot), self.content_size.width)
        if body != self._shown:
            same_height = self._shown is not None and (
                self._shown.plain.count("\n") == body.plain.count("\n")
            )
            self._shown = body
            static = self.query_one(".panel-body", Static)
            if not same_height:
                # Textual keys a widget's size on a counter that `refresh(layout=True)` bumps
                # only when no layout is pending; the first snapshot lands while one is (the
                # screen's first frame waits for it, right after `-short` restyled the panels),
                # and the empty body kept its one-line size. Sized afresh, whatever is pending.
                sizes = getattr(static, "_box_model_cache", None)  # a Textual private
                if sizes is not None:
                    sizes.clear()
            static.update(body, layout=not same_height)
        if self.SPARK:
            data = list(self.spark(snapshot))
            spark = self.query_one(Sparkline)
            if data != spark.data:
                spark.data = data

    def body(self, snapshot: Snapshot) -> Text:
        raise NotImplementedError

    def spark(self, snapshot: Snapshot) -> tuple[float, ...]:
        return ()


SEP = " · "


def fit(body: Text, width: int) -> Text:
    """Each line too wide for the panel broken at its " · " separators, never inside a figure.

    Left to the terminal's word wrap, "$34.66/h avg · 108 req/min now" came out as "... · 108"
    over "req/min now", and at 80 columns a line cut after its separator ended in a dangling
    "·". Pieces are packed greedily; a single piece wider than the panel is left to the
    ellipsis."""
    if width <= 0:
        return body
    out: list[Text] = []
    for row in body.split("\n"):
        if row.cell_len <= width or SEP not in row.plain:
            out.append(row)
            continue
        pieces, start = [], 0
        plain = row.plain
        while (at := plain.find(SEP, start)) >= 0:
            pieces.append(row[start:at])
            start = at + len(SEP)
        pieces.append(row[start:])
        cur = pieces[0]
        for p in pieces[1:]:
            if cur.cell_len + len(SEP) + p.cell_len <= width:
                cur = Text.assemble(cur, SEP, p)
            else:
                out.append(cur)
                cur = p
        out.append(cur)
    return lines(*out)


def line(*parts: tuple[str, str] | str) -> Text:
    """A line from (text, style) pairs; plain strings are unstyled. Never parses markup."""
    t = Text(no_wrap=True, overflow="ellipsis")
    for p in parts:
        if isinstance(p, tuple):
            t.append(p[0], style=p[1])
        else:
            t.append(p)
    return t


def lines(*rows: Text) -> Text:
    out = Text("\n", no_wrap=True, overflow="ellipsis").join(rows)
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out
