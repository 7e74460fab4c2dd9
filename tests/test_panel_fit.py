"""Panel lines break at their " · " separators, never inside a figure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from llmtop.tui.widgets.panel import SEP, fit, line, lines
from rich.text import Text

piece = st.text(alphabet="abc $%.0123456789/h", min_size=1, max_size=20).filter(
    lambda s: SEP not in s and s.strip() == s and s
)


@given(
    st.lists(st.lists(piece, min_size=1, max_size=6), min_size=1, max_size=5), st.integers(0, 60)
)
def test_fit_only_breaks_at_separators(rows: list[list[str]], width: int) -> None:
    body = lines(*(Text(SEP.join(r)) for r in rows))
    out = fit(body, width).plain.split("\n")
    # Nothing is lost or reordered: re-joining the broken lines gives each row back.
    it = iter(out)
    for r in rows:
        got = next(it)
        while got != SEP.join(r):
            got += SEP + next(it)
    assert next(it, None) is None
    if width:
        # A line is over the width only when it is a single piece (left to the ellipsis).
        pieces = {p for r in rows for p in r}
        assert all(len(x) <= width or x in pieces or SEP not in x for x in out), out


def test_fit_keeps_styles_and_the_words_of_a_figure_together() -> None:
    body = lines(line(("$34.66/h", "bold"), " avg · ", ("108", "bold"), " req/min now"))
    out = fit(body, 20)
    assert out.plain == "$34.66/h avg\n108 req/min now"
    assert [s.style for s in out.spans if out.plain[s.start : s.end] == "108"] == ["bold"]
