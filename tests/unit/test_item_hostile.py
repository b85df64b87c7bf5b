"""Hostile and arbitrary text into the item parser, the hasher and the UID/note rewriters: the
only error ever raised is ParseError, and parsing is bounded (nesting depth, size, lines)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from davsync.core.item import Item, Kind, parse_item, with_note, with_uid
from davsync.core.vtext import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_LINES,
    MAX_PARAMS,
    ParseError,
    parse,
    split_line,
    split_unquoted,
)

KINDS: list[Kind] = ["contacts", "calendars"]
CARD_HEAD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:deep\r\nFN:Deep\r\n"
CAL_HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:deep\r\n"


def nested(depth: int, kind: Kind = "contacts", name: str = "X") -> str:
    """A vCard (or an event) with components nested `depth` levels below it."""
    head, tail = ((CARD_HEAD, "END:VCARD\r\n") if kind == "contacts"
                  else (CAL_HEAD, "END:VEVENT\r\nEND:VCALENDAR\r\n"))
    return head + f"BEGIN:{name}\r\n" * depth + f"END:{name}\r\n" * depth + tail


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deep_nesting_is_a_parse_error_not_a_recursion_error(kind: Kind, depth: int) -> None:
    with pytest.raises(ParseError, match=f"nested more than {MAX_DEPTH} deep"):
        parse_item(nested(depth, kind).encode(), kind)


def test_unclosed_deep_nesting_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nested more than"):
        parse_item((CARD_HEAD + "BEGIN:X\r\n" * 5000).encode(), "contacts")


def test_nesting_up_to_the_limit_still_parses() -> None:
    deepest = MAX_DEPTH - 1                    # the VCARD itself is the first level
    item = parse_item(nested(deepest).encode(), "contacts")
    assert item.uid == "deep"
    too_deep = "BEGIN:VCARD\r\nUID:x\r\n" + "BEGIN:X\r\n" * MAX_DEPTH
    with pytest.raises(ParseError, match=f"line {MAX_DEPTH + 2}: 'BEGIN:X'"):  # names where
        parse_item(too_deep.encode(), "contacts")


def test_a_real_world_calendar_nests_within_the_limit() -> None:
    text = (CAL_HEAD + "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"
            "END:VEVENT\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:19700101T0"
            "00000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE"
            "\r\nEND:VCALENDAR\r\n")
    assert parse_item(text.encode(), "calendars").count == 1


def test_too_many_lines_is_a_parse_error() -> None:
    lines = "".join(f"NOTE:{i}\r\n" for i in range(MAX_LINES))
    with pytest.raises(ParseError, match=f"more than {MAX_LINES} lines"):
        parse_item(f"{CARD_HEAD}{lines}END:VCARD\r\n".encode(), "contacts")


@pytest.mark.parametrize("line", [
    "X-A" + ";B=1" * (MAX_PARAMS + 1) + ":v",              # on one line, not even split
    "X-A" + ';B="1"' * (MAX_PARAMS + 1) + ":v",
    "TEL;TYPE=" + "a," * MAX_PARAMS + "b:1",               # values of one parameter
    "\r\n".join(["X-A" + ";B=1,2" * 100 + ":v"] * (MAX_PARAMS // 200 + 1)),  # many lines
])
def test_too_many_parameters_is_a_parse_error(line: str) -> None:
    with pytest.raises(ParseError, match=f"more than {MAX_PARAMS} parameters"):
        parse_item(f"{CARD_HEAD}{line}\r\nEND:VCARD\r\n".encode(), "contacts")


def test_parameters_up_to_the_limit_still_parse() -> None:
    line = "TEL;TYPE=" + "a," * (MAX_PARAMS - 2) + "b:1"
    item = parse_item(f"{CARD_HEAD}{line}\r\nEND:VCARD\r\n".encode(), "contacts")
    assert item.uid == "deep"


def test_blank_lines_do_not_count_but_are_bounded_by_size() -> None:
    text = CARD_HEAD + "\r\n" * (MAX_LINES + 10) + "END:VCARD\r\n"
    assert parse_item(text.encode(), "contacts").uid == "deep"


def test_too_large_is_a_parse_error_before_decoding() -> None:
    big = CARD_HEAD.encode() + b"NOTE:" + b"x" * MAX_BYTES + b"\r\nEND:VCARD\r\n"
    with pytest.raises(ParseError, match="too large"):
        parse_item(big, "contacts")
    with pytest.raises(ParseError, match="too large"):
        parse(big.decode())


def test_lone_surrogate_text_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="not valid Unicode"):
        parse_item(CARD_HEAD + "NOTE:\ud800\r\nEND:VCARD\r\n", "contacts")


# ---- properties: arbitrary and hostile input -------------------------------------------------

FRAGMENTS = [
    "BEGIN:VCARD", "END:VCARD", "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VEVENT",
    "END:VEVENT", "BEGIN:VTODO", "END:VTODO", "BEGIN:VTIMEZONE", "END:VTIMEZONE", "BEGIN:X",
    "END:X", "begin:vcard", "g.BEGIN:VEVENT", "BEGIN;X=1:VEVENT", "END;Y=2:VEVENT",
    "item1.END:VCARD", "UID:a", "UID:b", "UID:", "g.UID:c", "UID;X=\"a:b\":d", "VERSION:3.0",
    "DESCRIPTION:x", "x.DESCRIPTION;A=b:y", "TZID:Z", "FN:\u00e9", "NOTE:\\n", ":", ";", "\"",
    "=", ",", "A;B=\"unterminated:v", "A;=:", "TYPE=a,b", "ENCODING=b", "X-\u0000:y", " folded",
    "\tfolded", "", "   ", "\ufeff", "\u2028", "PHOTO;ENCODING=b:" + "QUJD" * 30,
]
NEWLINES = ["\r\n", "\n", "\r", "\r\n ", "\n\t"]


@st.composite
def hostile(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(FRAGMENTS) | st.text(max_size=12),
                                    st.sampled_from(NEWLINES)), max_size=60))
    return "".join(a + b for a, b in parts)


@st.composite
def deep(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(KINDS))
    text = nested(draw(st.integers(0, 3 * MAX_DEPTH)), kind,
                  draw(st.sampled_from(["X", "VEVENT", "VCARD", "VALARM"])))
    cut = draw(st.integers(0, len(text)))
    return text[:cut] if draw(st.booleans()) else text


def parse_everything(data: bytes | str) -> None:
    """Parse as either kind, hash, and rewrite UID and note: ParseError is the only failure."""
    for kind in KINDS:
        try:
            item = parse_item(data, kind)
        except ParseError:
            continue
        assert isinstance(item, Item) and len(item.hash) == 64
        for rewrite in (lambda i: with_uid(i, "new-uid"), lambda i: with_note(i, "a; note,\n")):
            try:
                again = rewrite(item)
            except ParseError:
                continue
            assert again.kind == kind


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_everything(data)


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    parse_everything(text)
    parse_everything(text.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(hostile())
@example("BEGIN;X=1:VCALENDAR\nDESCRIPTION:x\nBEGIN:VEVENT\nUID:a\nEND:VEVENT\nEND:VCALENDAR\n")
def test_hostile_content_lines(text: str) -> None:
    parse_everything(text)
    parse_everything(text.encode())


@SETTINGS
@given(deep())
def test_nesting_of_any_depth_and_truncated(text: str) -> None:
    parse_everything(text)


@SETTINGS
@given(hostile())
@example("BEGIN:VCARD\ng.UID:a\nEND:VCARD\n")
@example("BEGIN:VCARD\nitem1.END:VCARD\n")
def test_with_uid_gives_the_new_uid(text: str) -> None:
    for kind in KINDS:
        try:
            item = parse_item(text, kind)
            again = with_uid(item, "new-uid")
        except ParseError:
            continue
        assert again.uid == "new-uid"


# ---- the regex splitting is the per-character definition, in linear time ----------------------

def reference_split(text: str, sep: str) -> list[str]:
    """The definition: toggle on every double quote, split at `sep` outside quotes."""
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def reference_head(line: str) -> int | None:
    """Index of the first ':' outside quotes."""
    quoted = False
    for idx, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return idx
    return None


QUOTY = st.text(alphabet='";,:=ab\u00e9 ', max_size=40)


@settings(max_examples=500, deadline=None)
@given(QUOTY, st.sampled_from([";", ","]))
def test_split_unquoted_is_the_definition(text: str, sep: str) -> None:
    assert split_unquoted(text, sep) == reference_split(text, sep)


@settings(max_examples=500, deadline=None)
@given(QUOTY)
def test_split_line_finds_the_first_unquoted_colon(line: str) -> None:
    idx = reference_head(line)
    try:
        prop = split_line(line)
    except ParseError:
        return
    assert idx is not None and prop.value == line[idx + 1:]


def test_a_line_of_quoted_parameters_up_to_the_limit_splits() -> None:
    line = "X-A" + ';B="x,y:z"' * MAX_PARAMS + ":value"
    prop = split_line(line)
    assert prop.value == "value" and len(prop.params) == MAX_PARAMS


def test_heads_remembered_between_items_stay_bounded() -> None:
    """Issue 13: parsing remembers the heads it saw (`TEL;TYPE=CELL`), as most items repeat
    the same few; items whose heads are all different (hostile, or merely unusual) must not
    grow that memory without bound, and a long head is not kept at all."""
    from davsync.core import vtext

    for n in range(3 * vtext._HEADS_KEPT):
        parse_item(f"{CARD_HEAD}X-N{n};TYPE=a:v\r\nEND:VCARD\r\n".encode(), "contacts")
    assert len(vtext._HEADS) <= vtext._HEADS_KEPT
    long_head = "X-LONG;TYPE=" + "a" * 300
    parse_item(f"{CARD_HEAD}{long_head}:v\r\nEND:VCARD\r\n".encode(), "contacts")
    assert long_head not in vtext._HEADS


_HEAD_NAMES = st.sampled_from(["TEL", "tel", "item1.TEL", "X-A", "EMAIL", "RRULE"])
_HEAD_PARAMS = st.lists(st.sampled_from(["TYPE=WORK", "type=work,CELL", "TYPE=cell", "TYPE=CELL",
                                         "ENCODING=b", "VALUE=uri", "X=a,b", "PREF=1", "TYPE="]),
                        max_size=3)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_HEAD_NAMES, _HEAD_PARAMS), min_size=1, max_size=6))
def test_a_remembered_head_parses_and_hashes_as_a_new_one(
    heads: list[tuple[str, list[str]]],
) -> None:
    """The same item parsed with the heads remembered and with nothing remembered: the same
    properties and the same hash (a hash that changed would make every item look edited)."""
    from davsync.core import item as item_module
    from davsync.core import vtext

    lines = "".join(f"{';'.join([name, *params])}:FREQ=DAILY;COUNT=2\r\n"
                    for name, params in heads)
    data = f"{CARD_HEAD}{lines}END:VCARD\r\n".encode()
    vtext._HEADS.clear()
    item_module._norm_head_cached.cache_clear()
    cold = parse_item(data, "contacts"), parse(data.decode())
    warm = parse_item(data, "contacts"), parse(data.decode())
    assert cold == warm
    props = warm[1][0].props  # each line as the uncached way splits it
    assert props[3:] == [split_line(line) for line in lines.split("\r\n")[:-1]]
