"""Canonical JSON through orjson gives the bytes the standard library's definition gives, or the same
refusal; and a signed event changed in any one byte is refused (issue 17)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import protocol

SECRET = bytes.fromhex("5a" * 32)
STD = protocol._canonical_json_stdlib

# Any text, control characters, quotes, backslashes, non-BMP and lone surrogates included.
TEXT = st.text(st.characters(codec=None), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | TEXT
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


def _nested(depth):
    value = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _same(obj):
    """canonical_json(obj) and the definition give the same bytes, or raise the same exception type."""
    try:
        expected = STD(obj)
    except Exception as exc:  # noqa: BLE001 - whatever the definition raises, canonical_json must too
        with pytest.raises(type(exc)):
            protocol.canonical_json(obj)
        return None
    assert protocol.canonical_json(obj) == expected
    return expected


EVENT_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60)


@st.composite
def events(draw):
    """A valid signed event with any optional fields set to any text the protocol takes."""
    optional = {
        name: draw(st.none() | EVENT_TEXT.filter(lambda t: len(t) <= 64))
        for name in ("card", "student", "guardian", "staff", "session", "operator")
    }
    optional["note"] = draw(st.none() | EVENT_TEXT)
    optional["reason"] = draw(st.none() | EVENT_TEXT)
    optional["roster_version"] = draw(st.none() | st.integers(0, protocol.INT32))
    if draw(st.booleans()):
        optional["boot"] = draw(st.integers(1, protocol.INT32))
        optional["mono"] = draw(st.integers(0, protocol.MAX_MONO))
    offset = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    at = datetime(2026, 12, 3, 7, 30, tzinfo=UTC).astimezone(offset) + timedelta(milliseconds=draw(st.integers(0, 10**9)))
    return protocol.new_event(
        school=draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z")), kiosk=draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z")),
        seq=draw(st.integers(1, protocol.INT32)), prev=draw(st.sampled_from(["", "ab" * 32])), at=at,
        kind=draw(st.sampled_from(protocol.KINDS)), secret=SECRET, **optional,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_every_valid_event_has_the_canonical_bytes_of_the_definition(event):
    wire = _same(event)
    assert wire is not None
    assert _same({"v": 1, "batch": [event, event]}) is not None
    body = {k: v for k, v in event.items() if k != "sig"}
    assert protocol.verify_wire(wire, event["sig"], SECRET)
    assert not protocol.verify_wire(wire, event["sig"], bytes(32))
    assert protocol.sign(event, SECRET) == __import__("hmac").new(SECRET, STD(body), "sha256").hexdigest()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSONISH)
def test_any_json_value_has_the_same_bytes_or_the_same_refusal(value):
    _same(value)
    _same({"v": 1, "x": value})


@pytest.mark.parametrize(
    "value",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": [1, {"y": float("-inf")}]},
        {"x": 1.5},
        {"x": 1e16},
        {"x": 1e-7},
        {1: "a"},  # the definition writes "1": so must canonical_json
        {True: "a", None: "b"},
        {1: "a", "b": 2},  # keys that do not sort: TypeError
        {"x": datetime(2026, 12, 3, tzinfo=UTC)},  # orjson would write it; the definition refuses
        {"x": uuid.UUID(int=7)},
        {"x": Decimal("1.5")},
        {"x": 2**64},
        {"x": -(2**63) - 1},
        {"x": "\ud800"},  # a lone surrogate: UnicodeEncodeError
        {"x": (1, 2)},
        {"x": {1, 2}},
        {"x": IntEnum("N", "A B").A},
        {"x": Enum("C", "RED").RED},
        {"x": type("S", (str,), {})("sub")},
        {"x": _nested(40)},
        {"x": _nested(300)},
    ],
)
def test_what_orjson_would_write_otherwise_is_written_or_refused_as_by_the_definition(value):
    _same(value)


def test_nan_and_infinity_are_refused():
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="JSON compliant"):
            protocol.canonical_json({"v": 1, "x": bad})


def test_a_non_string_key_beside_string_keys_is_refused():
    with pytest.raises(TypeError):
        protocol.canonical_json({"a": 1, 2: 3})


def _accepted(payload: bytes) -> dict | None:
    """The event central would take from this payload with this kiosk's secret, or None."""
    try:
        (raw,) = protocol.split_events_payload(payload)
        event = protocol.parse_event(raw)
    except (protocol.ProtocolError, ValueError):
        return None
    # central's way (the signed bytes cut from the event's canonical JSON) agrees with the plain one
    signed = protocol.verify(raw, SECRET)
    assert protocol.verify_wire(protocol.canonical_json(raw), event.sig, SECRET) == signed
    return raw if signed else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.data())
def test_any_one_byte_change_of_a_signed_event_is_refused(event, data):
    wire = protocol.canonical_json(event)
    assert _accepted(wire) == event
    i = data.draw(st.integers(0, len(wire) - 1), label="position")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != wire[i]), label="byte")
    changed = bytearray(wire)
    changed[i] = new
    taken = _accepted(bytes(changed))
    # Refused, or (a JSON escape written another way: \u001f as \u001F) the very same event.
    assert taken is None or protocol.canonical_json(taken) == wire


def test_every_one_byte_change_of_one_signed_event_is_refused():
    event = protocol.new_event(
        school="s1", kiosk="k1", seq=7, prev="cd" * 32, at=datetime(2026, 12, 3, 7, 30, tzinfo=UTC), kind="pickup",
        secret=SECRET, student="20260001", guardian="g7", card="04A1B2C3", note="王小明 \"x\"", boot=2, mono=1234,
    )
    wire = protocol.canonical_json(event)
    for i in range(len(wire)):
        for new in (wire[i] ^ 0x01, wire[i] ^ 0x20, ord("0"), ord("}")):
            if new == wire[i]:
                continue
            changed = bytearray(wire)
            changed[i] = new
            assert _accepted(bytes(changed)) is None, (i, bytes([new]))


def test_the_definition_is_the_one_the_wire_always_had():
    assert STD({"b": [1, None, True], "a": "王\n"}) == json.dumps(
        {"a": "王\n", "b": [1, None, True]}, separators=(",", ":"), ensure_ascii=False
    ).encode()


# --- decoding: orjson first, the standard library's definition where orjson reads otherwise ---------

DECODED = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


def _decoded_alike(payload: bytes) -> None:
    """decode(payload) is the definition's value, with the same types (1, 1.0 and True are equal in
    Python, not in their repr), or the same ProtocolError, word for word."""
    try:
        expected = protocol._decode_stdlib(payload)
    except protocol.ProtocolError as exc:
        with pytest.raises(protocol.ProtocolError) as raised:
            protocol.decode(payload)
        assert str(raised.value) == str(exc)
        return
    assert repr(protocol.decode(payload)) == repr(expected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DECODED)
def test_any_json_text_decodes_to_what_the_definition_reads(value):
    _decoded_alike(json.dumps(value).encode())  # \u escapes: lone surrogates, NaN and Infinity as written
    _decoded_alike(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))  # raw UTF-8


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_decode_or_are_refused_as_by_the_definition(payload):
    _decoded_alike(payload)


@pytest.mark.parametrize("payload", [
    b"1e400", b"NaN", b"-Infinity", b"[1.0, 2]", b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", b"99999999999999999999",
    b"18446744073709551615", b"-9223372036854775809", b'"\\ud800"', b"[" * 32 + b"]" * 32, b"[" * 33 + b"]" * 33,
    b"-0", b"-0.0", b' {"v" : 1 } ', b'{"v":1}x', b'"\x01"',
])
def test_what_orjson_reads_otherwise_is_read_or_refused_as_by_the_definition(payload):
    _decoded_alike(payload)


def _sealed_by_definition(payload: bytes, key) -> bytes:
    data = protocol._decode_stdlib(payload)
    body = {k: v for k, v in data.items() if k != "sig"}
    return STD({**body, "sig": key.sign(STD(body)).hex()})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(TEXT, DECODED, max_size=6))
def test_a_sealed_message_has_the_bytes_the_definition_gives_or_the_same_refusal(fields):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    payload = json.dumps(fields).encode()
    try:
        expected = _sealed_by_definition(payload, key)
    except Exception as exc:  # noqa: BLE001 - whatever the definition raises, seal must too
        with pytest.raises(type(exc)):
            protocol.seal(payload, key)
        return
    assert protocol.seal(payload, key) == expected
