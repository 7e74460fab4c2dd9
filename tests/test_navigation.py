"""Where keys lead (tui/navigation.py): the read-ahead's guesses are views a key can open."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from llmtop.store.filters import DIMENSIONS, Clause
from llmtop.tui.navigation import DRILL_ORDER, View, drill_view, likely_views, read_key

from tests.test_latency_paths import group

names = st.sampled_from(["chat", "summarize", "a=b", "", "(none)"])
clauses = st.builds(Clause, st.sampled_from(DIMENSIONS), st.sampled_from(["=", "!="]), names)


class Snap:
    def __init__(self, keys: list[str]) -> None:
        self.groups = tuple(group(k, 1.0 + i, 1) for i, k in enumerate(keys))


@given(
    path=st.lists(clauses, max_size=3),
    filters=st.lists(clauses, max_size=2),
    group_by=st.sampled_from(DIMENSIONS),
    keys=st.lists(names, max_size=4, unique=True),
    under=st.none() | names,
    window=st.sampled_from([300.0, 3600.0, 86400.0]),
)
def test_guesses_are_distinct_views_a_key_opens(
    path: list[Clause],
    filters: list[Clause],
    group_by: str,
    keys: list[str],
    under: str | None,
    window: float,
) -> None:
    view = View(path=tuple(path), group_by=group_by)
    snap: Any = Snap(keys)
    guesses = likely_views(view, filters, window, snap, under, DIMENSIONS)
    assert len(set(guesses)) == len(guesses)
    assert read_key(view, filters, window) not in guesses
    drills = [read_key(drill_view(view, filters, v), filters, window) for v in [under, *keys]]
    fixed = {c.key for c in (*path, *filters) if c.op == "="}
    for key in guesses:
        assert key[0] == round(window)
        if key in drills:
            continue
        # Otherwise a regrouping of the same rows, by a dimension not pinned to one value.
        assert key[2] == (*filters, *path) and key[1] not in fixed | {group_by}
    if under is not None:
        assert guesses[0] == drills[0]  # the row under the cursor comes first


def test_a_drill_groups_by_the_next_dimension_not_pinned() -> None:
    top = View(group_by="feature")
    d = drill_view(top, [], "chat")
    assert d == View(path=(Clause("feature", "=", "chat"),), group_by="model")
    d = drill_view(d, [Clause("customer", "=", "acme")], "gpt-4o")
    assert d.group_by == "user" and not d.requests
    last = drill_view(d, [Clause("customer", "=", "acme")], "u-1")
    assert last.requests and all(
        dim in {c.key for c in last.path} | {"customer"} for dim in DRILL_ORDER
    )
    assert likely_views(View(requests=True), [], 3600, Snap(["x"]), "x", DIMENSIONS) == []  # type: ignore[arg-type]
