"""The filter language (store/filters.py): parsing, quoting, `(none)`, bad input, and the SQL it
becomes, checked against rows written through the real collector path."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmtop.store.filters import (
    NONE_LABEL,
    OPERATORS,
    Clause,
    format_clause,
    format_filter,
    format_value,
    format_window,
    label_matches,
    parse_filter,
    parse_window,
    where_sql,
)
from llmtop.store.reader import Reader

from tests.builders import payload, write

NOW = 1_795_003_200.0
T0 = NOW - 600

#: (feature, customer, region (an extra tag, kept in tags_json), status); row i starts at
#: T0 + i, which identifies it.
ROWS: list[tuple[str, str | None, str | None, str]] = [
    ("search", "acme inc", "eu", "success"),
    ("search", "globex", None, "failure"),
    ("chat", None, "us", "success"),
    ("chat-v2", "x y", "eu west", "success"),
    ("chat", 'o\'neil "q"', None, "success"),
    ("embed", "(none)", "eu", "failure"),
]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    db = tmp_path_factory.mktemp("filters") / "f.db"
    payloads = []
    for i, (feature, customer, region, status) in enumerate(ROWS):
        tags: dict[str, object] = {"feature": feature}
        if customer is not None:
            tags["customer"] = customer
        if region is not None:
            tags["llmtop"] = {"region": region}  # a tag of the user's own: kept in tags_json
        failed = status == "failure"
        payloads.append(
            payload(
                start=T0 + i,
                status=status,
                error_class="RateLimitError" if failed else None,
                error_code="429" if failed else None,
                **tags,
            )
        )
    with pytest.MonkeyPatch.context() as mp:  # module scope: before conftest's per-test setting
        mp.setenv("LLMTOP_RETENTION", "off")
        assert write(db, payloads) == len(ROWS)
    r = Reader(db)
    yield r
    r.close()


def selected(reader: Reader, clauses: Sequence[Clause]) -> set[int]:
    """Which ROWS the SQL of `clauses` selects (by index)."""
    where, params = where_sql(clauses)
    return {
        round(t - T0)
        for (t,) in reader.query(f"SELECT c.started_at FROM calls c WHERE {where}", params)
    }


def expected(clauses: Sequence[Clause]) -> set[int]:
    """The documented meaning, in Python: a negated clause also keeps rows without the tag."""
    out = set()
    for i, (feature, customer, region, status) in enumerate(ROWS):
        row = {"feature": feature, "customer": customer, "region": region, "status": status}
        ok = True
        for c in clauses:
            v = row[c.key]
            if c.value is None:
                hit = v is None
            elif "~" in c.op:
                hit = v is not None and fnmatch.fnmatchcase(v, c.value)
            else:
                hit = v == c.value
            ok = ok and (hit != c.op.startswith("!"))
        if ok:
            out.add(i)
    return out


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("feature=search", {0, 1}),
        ("feature!=search", {2, 3, 4, 5}),
        ("feature~chat*", {2, 3, 4}),
        ("feature!~chat*", {0, 1, 5}),
        ('customer="acme inc"', {0}),
        ("customer='x y'", {3}),
        ("customer=(none)", {2}),
        ("customer=", {2}),
        ("customer!=(none)", {0, 1, 3, 4, 5}),
        ('customer="(none)"', {5}),  # quoted: the literal text, not "no customer"
        ("customer!=globex", {0, 2, 3, 4, 5}),  # rows without the tag are kept
        ('customer~"*\'*"', {4}),
        ("region=eu", {0, 5}),
        ('region="eu west"', {3}),
        ("region~eu*", {0, 3, 5}),
        ("region!~eu*", {1, 2, 4}),
        ("region=(none)", {1, 4}),
        ("status=failure", {1, 5}),
        ("status!=failure", {0, 2, 3, 4}),
        ("status=success feature~chat*", {2, 3, 4}),
        ("", {0, 1, 2, 3, 4, 5}),
    ],
)
def test_every_operator_selects_the_documented_rows(
    reader: Reader, text: str, rows: set[int]
) -> None:
    clauses = parse_filter(text)
    assert expected(clauses) == rows  # the table above is the documented meaning...
    assert selected(reader, clauses) == rows  # ...and the SQL agrees


VALUES = st.sampled_from(
    ["search", "chat", "chat*", "*", "globex", "acme inc", "x y", "eu", "eu*", "(none)", "?"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.builds(
            Clause,
            st.sampled_from(["feature", "customer", "region"]),
            st.sampled_from(OPERATORS),
            st.one_of(st.none(), VALUES),
        ),
        max_size=3,
    )
)
def test_sql_agrees_with_the_meaning_for_any_clauses(reader: Reader, clauses: list[Clause]) -> None:
    assert selected(reader, clauses) == expected(clauses)


# --- text ---------------------------------------------------------------------------------------


def test_quoted_values_keep_spaces_quotes_and_backslashes() -> None:
    assert parse_filter('customer="acme inc" team=search') == (
        Clause("customer", "=", "acme inc"),
        Clause("team", "=", "search"),
    )
    assert parse_filter("customer='x y'") == (Clause("customer", "=", "x y"),)
    assert parse_filter(r'customer="say \"hi\""') == (Clause("customer", "=", 'say "hi"'),)
    assert parse_filter(r"path='a\\b'") == (Clause("path", "=", "a\\b"),)
    assert parse_filter('customer=" padded "') == (Clause("customer", "=", " padded "),)
    assert parse_filter('"team=a b"') == (Clause("team", "=", "a b"),)  # the whole term quoted
    assert parse_filter("model~gpt-4o*") == (Clause("model", "~", "gpt-4o*"),)


def test_none_label_and_empty_value_match_rows_without_the_tag() -> None:
    assert parse_filter("customer=(none)") == (Clause("customer", "=", None),)
    assert parse_filter("customer!=") == (Clause("customer", "!=", None),)
    assert parse_filter('customer=""') == (Clause("customer", "=", None),)
    assert format_value(None) == NONE_LABEL
    assert format_value(NONE_LABEL) == '"(none)"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("search", "search"),
        ("gpt-4o*", "gpt-4o*"),
        ("acme inc", '"acme inc"'),
        ('say "hi"', "'say \"hi\"'"),
        ("o'neil", '"o\'neil"'),
        ("both ' and \"", '"both \' and \\""'),
        ("a\\b", '"a\\\\b"'),
        ("", '""'),
        ("=x", '"=x"'),
        ("~x", '"~x"'),
    ],
)
def test_format_value_quotes_only_when_needed(value: str, text: str) -> None:
    assert format_value(value) == text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(
            Clause,
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,8}", fullmatch=True).filter(
                lambda k: k != "status"
            ),
            st.sampled_from(OPERATORS),
            st.one_of(st.none(), st.text(st.characters(exclude_categories=("Cs",)), min_size=1)),
        ),
        max_size=4,
    )
)
def test_format_then_parse_gives_the_same_clauses(clauses: list[Clause]) -> None:
    """What an alert's scope says can always be typed (or jumped) back to the same rows."""
    assert parse_filter(format_filter(clauses)) == tuple(clauses)
    for c in clauses:
        assert parse_filter(format_clause(c)) == (c,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", "bad filter term 'foo': use key=value, key!=value, key~glob* or key!~glob*"),
        ("=x", "bad filter term '=x': use key=value"),
        ("9team=x", "bad filter term '9team=x'"),
        ('customer="acme inc', "bad filter term 'customer=\"acme inc': a quote is not closed"),
        ("customer='x", "a quote is not closed"),
        ("status=maybe", "status takes success or failure"),
        ("status=(none)", "status takes success or failure"),
        # Matched nothing ("=search" as the value): an empty report with exit 0.
        (
            "team==search",
            "bad filter term 'team==search': one operator (=, !=, ~, !~), e.g. team=search",
        ),
        ("model=~gpt*", "e.g. model~gpt*"),
    ],
)
def test_bad_filters_say_which_term_and_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_filter(text)


def test_a_dimension_that_cannot_be_a_json_path_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape('bad dimension "a\'b"')):
        where_sql([Clause("a'b", "=", "x")])


def test_labels_match_like_rows() -> None:
    assert label_matches("api", parse_filter("source=api"))
    assert not label_matches("api", parse_filter("source!=api"))
    assert label_matches("worker-2", parse_filter("source~work*"))
    assert not label_matches("worker-2", parse_filter("source!~work*"))
    assert label_matches("api", ())


def test_windows_parse_and_format() -> None:
    assert parse_window("90s") == 90 and parse_window(" 15m ") == 900
    assert parse_window("1.5h") == 5400 and parse_window("2w") == 14 * 86400
    assert format_window(86400 * 7) == "7d" and format_window(5400) == "90m"
    assert format_window(45) == "45s"
    with pytest.raises(ValueError, match=re.escape("bad window '5x': use a number and a unit")):
        parse_window("5x")
    with pytest.raises(ValueError, match=re.escape("bad window '0m': must be positive")):
        parse_window("0m")


def test_where_sql_of_no_clauses_selects_everything(tmp_path: Path) -> None:
    assert where_sql(()) == ("1", [])
