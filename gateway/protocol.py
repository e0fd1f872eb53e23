"""Wire protocol v1 between kiosks and central (ARCHITECTURE.md, "Wire protocol v1").

Models, topic rules, canonical JSON, signatures and the per-kiosk hash chain. This module
imports no MQTT client: kiosk, central and the tests share it as the one statement of the
contract.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import time
import uuid
import zlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

VERSION = 1
DEFAULT_PREFIX = "sg/v1"
MAX_BATCH = 1000
MAX_PAYLOAD = 1024 * 1024  # bytes of one message on an events topic; a full batch is ~0.5 MB
# Nesting of any message: a batch is 3 deep (object, list, event), a roster about 5. Python's JSON
# decoder recurses, so 100,000 levels raise RecursionError; far fewer are refused here as malformed.
MAX_DEPTH = 32
TOPICS_KEPT = 16_384  # topics a Topics parses or builds once and keeps (a city: 2,000 gates x 3 topics)
# Every time on the wire lies in these years (UTC): a year 9999 or 0001 with an offset overflows
# datetime arithmetic, so such a time is a malformed field, not an OverflowError in a reader.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
# A boot's monotonic clock runs at most ten years: milliseconds past this are no real uptime, and
# central's clock map (base = arrival - mono) and its readers stay within datetime's range.
MAX_MONO = 10 * 366 * 86_400_000

KINDS = (
    "checkin",
    "checkout",
    "pickup",
    "pickup_denied",
    "self_dismiss",
    "unknown_card",
    "override",
    "staff_on",
    "staff_off",
    "visitor_in",
    "visitor_out",
    "alert",
    "kiosk_boot",
)
Kind = Literal[
    "checkin",
    "checkout",
    "pickup",
    "pickup_denied",
    "self_dismiss",
    "unknown_card",
    "override",
    "staff_on",
    "staff_off",
    "visitor_in",
    "visitor_out",
    "alert",
    "kiosk_boot",
]

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

Ident = Annotated[StrictStr, Field(pattern=_ID_RE.pattern)]
Text = Annotated[StrictStr, Field(max_length=500)]
# Bounded so every number fits the 32-bit INTEGER columns of PostgreSQL (and SQLite's 64 bits):
# a number past them is a malformed payload, not a database error that sinks a whole batch.
INT32 = 2**31 - 1
Seq = Annotated[StrictInt, Field(ge=1, le=INT32)]
Count = Annotated[StrictInt, Field(ge=0, le=INT32)]
Millis = Annotated[StrictInt, Field(ge=0, le=MAX_MONO)]


class ProtocolError(ValueError):
    """A payload or topic that does not follow protocol v1; the message says what is wrong."""


# --- canonical JSON, signatures, chain -------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: the bytes that are hashed and signed.

    What every message holds (objects with string keys, lists, strings, 64-bit integers, booleans,
    null) goes through orjson, which writes exactly these bytes about ten times faster. Anything
    else (a float, NaN included, which orjson would write as ``null``; a key that is not a string;
    a datetime or UUID orjson would accept; a subclass) takes the standard library's way, which
    writes it or refuses it as it always did."""
    if _plain(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # an integer past 64 bits, a lone surrogate: json decides
            pass
    return _canonical_json_stdlib(obj)


def _canonical_json_stdlib(obj: Any) -> bytes:
    """The definition of canonical JSON; ``canonical_json`` must give the same bytes or the same error."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_SCALARS = frozenset({str, int, bool, type(None)})
_STR = frozenset({str})


def _plain(obj: Any) -> bool:
    """Whether ``obj`` holds only dicts with ``str`` keys, lists, tuples and the exact types
    ``str``, ``int``, ``bool`` and None (no floats, no subclasses), nested at most MAX_DEPTH deep;
    without recursion, and a flat event costs one type check a field."""
    scalars = _SCALARS
    if type(obj) is dict and set(map(type, obj)) <= _STR and set(map(type, obj.values())) <= scalars:
        return True  # a flat object (an event, an ack): no walk
    stack = [(obj, 0)]
    while stack:
        item, level = stack.pop()
        kind = type(item)
        if kind is dict:
            if level >= MAX_DEPTH:
                return False
            for key, value in item.items():
                if type(key) is not str:
                    return False
                if type(value) not in scalars:
                    stack.append((value, level + 1))
        elif kind is list or kind is tuple:
            if level >= MAX_DEPTH:
                return False
            for value in item:
                if type(value) not in scalars:
                    stack.append((value, level + 1))
        elif kind not in scalars:
            return False
    return True


def sign(fields: dict[str, Any], secret: bytes) -> str:
    """Hex HMAC-SHA256 over the canonical JSON of every field but ``sig``."""
    body = {k: v for k, v in fields.items() if k != "sig"}
    return hmac.digest(secret, canonical_json(body), "sha256").hex()


def verify(event: dict[str, Any], secret: bytes) -> bool:
    sig = event.get("sig")
    return isinstance(sig, str) and hmac.compare_digest(sign(event, secret), sig)


# --- central's signature (Ed25519) ------------------------------------------------------------
# What central publishes (acks, roster snapshots and deltas) carries ``sig``: hex Ed25519 signature
# by central's own key over the canonical JSON of every other field, so fields added later are
# covered without change. Kiosks hold only the public key: no kiosk can speak as central.

CENTRAL_SIG_HEX = 128  # hex digits of an Ed25519 signature


def public_key_hex(key: Ed25519PrivateKey) -> str:
    """Central's public key as kiosks are given it: 64 hex digits of the raw 32 bytes."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def parse_public_key(value: str) -> Ed25519PublicKey:
    """A public key of 64 hex digits (``public_key_hex``); ProtocolError names what is wrong."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
        raise ProtocolError(f"central key {value!r} is not 64 hex digits (an Ed25519 public key)")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(value.strip()))


def seal(payload: bytes, key: Ed25519PrivateKey) -> bytes:
    """Sign one message central publishes: the same JSON object with ``sig`` added, as canonical JSON.

    An empty payload (clearing a retained message) is returned as it is: there is nothing to trust.
    """
    if not payload:
        return payload
    data, plain = _read(payload)  # central's own JSON, read back: orjson, as every message central takes in
    if not isinstance(data, dict):
        raise ProtocolError(f"only a JSON object can be signed, not {type(data).__name__}")
    body = {k: v for k, v in data.items() if k != "sig"}
    if plain:
        # What canonical_json checks before it lets orjson write was checked in reading: both the signed
        # bytes and the sealed ones straight through orjson (central signs a message per gate and school
        # of every stored batch; the check walked a school's feed three times).
        signed = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return orjson.dumps({**body, "sig": key.sign(signed).hex()}, option=orjson.OPT_SORT_KEYS)
    return canonical_json({**body, "sig": key.sign(canonical_json(body)).hex()})


def unseal(payload: bytes, key: Ed25519PublicKey | None) -> dict[str, Any]:
    """The JSON object of a message from central, once its ``sig`` verifies with central's key.

    Raises ProtocolError saying why it does not: no key to check with, no or a malformed ``sig``,
    or a signature that does not match (a forged or altered message).
    """
    if key is None:
        raise ProtocolError("no central key is configured, so nothing from central can be verified")
    data = decode(payload)
    if not isinstance(data, dict):
        raise ProtocolError(f"a message from central must be a JSON object, not {type(data).__name__}")
    sig = data.get("sig")
    if not isinstance(sig, str) or not re.fullmatch(rf"[0-9a-f]{{{CENTRAL_SIG_HEX}}}", sig):
        raise ProtocolError(f"message has no central signature ('sig' of {CENTRAL_SIG_HEX} lower-case hex digits)")
    body = {k: v for k, v in data.items() if k != "sig"}
    try:
        key.verify(bytes.fromhex(sig), canonical_json(body))
    except InvalidSignature:
        raise ProtocolError("central signature does not verify: the message is forged or altered") from None
    return data


def verify_wire(wire: bytes, sig: Any, secret: bytes) -> bool:
    """``verify`` for an event already written as canonical JSON (``wire``, ``sig`` included), which
    central needs anyway for the chain hash: the signed bytes are ``wire`` without its ``"sig"``
    member, so neither the body nor its JSON is built again. A ``sig`` key is never the first of an
    event (``at`` sorts before it), and a quote inside a string is escaped, so the member appears
    once; anything else is checked the long way."""
    if not isinstance(sig, str) or not _HEX64_RE.fullmatch(sig):
        return False
    member = b',"sig":"' + sig.encode() + b'"'
    if wire.count(member) != 1:
        return verify(decode(wire), secret)
    body = wire.replace(member, b"", 1)
    return hmac.compare_digest(hmac.digest(secret, body, "sha256").hex(), sig)


def event_hash(event: dict[str, Any]) -> str:
    """What the next event's ``prev`` holds: hex SHA-256 of this event's canonical JSON, ``sig`` included."""
    return hashlib.sha256(canonical_json(event)).hexdigest()


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7): keys that insert in order into B-trees."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return str(uuid.UUID(int=value))


# --- topics -------------------------------------------------------------------------------


def check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ProtocolError(f"{what} {value!r} is not an id of [A-Za-z0-9_-]{{1,64}}")
    return value


class Topics:
    """Topic builders and parsing for one prefix (``sg/v1`` unless configured)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix.rstrip("/")
        # A city's 2,000 gates send and are sent on the same topics all day: each parsed or built once
        # (a bounded cache: a flood of made-up topics cannot grow it; errors are never kept).
        self._parsed = functools.lru_cache(maxsize=TOPICS_KEPT)(self._parse)
        self._acks = functools.lru_cache(maxsize=TOPICS_KEPT)(self._ack)
        self._feeds = functools.lru_cache(maxsize=TOPICS_KEPT)(self._feed)

    def events(self, school: str, kiosk: str) -> str:
        return f"{self.prefix}/{check_id(school, 'school')}/{check_id(kiosk, 'kiosk')}/events"

    def ack(self, school: str, kiosk: str) -> str:
        return self._acks(school, kiosk)

    def _ack(self, school: str, kiosk: str) -> str:
        return f"{self.prefix}/{check_id(school, 'school')}/{check_id(kiosk, 'kiosk')}/ack"

    def status(self, school: str, kiosk: str) -> str:
        return f"{self.prefix}/{check_id(school, 'school')}/{check_id(kiosk, 'kiosk')}/status"

    def roster(self, school: str) -> str:
        return f"{self.prefix}/{check_id(school, 'school')}/roster"

    def roster_delta(self, school: str) -> str:
        return f"{self.prefix}/{check_id(school, 'school')}/roster/delta"

    def feed(self, school: str) -> str:
        """The school's feed: every event central stored, in its order (central publishes, the school's kiosks read)."""
        return self._feeds(school)

    def _feed(self, school: str) -> str:
        return f"{self.prefix}/{check_id(school, 'school')}/feed"

    def all_events(self) -> str:
        return f"{self.prefix}/+/+/events"

    def all_status(self) -> str:
        return f"{self.prefix}/+/+/status"

    def all_feeds(self) -> str:
        return f"{self.prefix}/+/feed"

    def shared_events(self, group: str = "central") -> str:
        """MQTT 5 shared subscription for several ingest workers (Mosquitto/EMQX only)."""
        return f"$share/{group}/{self.all_events()}"

    def parse(self, topic: str) -> tuple[str, str, str | None]:
        """Return ``(kind, school, kiosk)``; kind is events, ack, status, roster, roster/delta or feed."""
        return self._parsed(topic)

    def _parse(self, topic: str) -> tuple[str, str, str | None]:
        if not topic.startswith(self.prefix + "/"):
            raise ProtocolError(f"topic {topic!r} is not under {self.prefix!r}")
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 2 and parts[1] == "roster":
            return "roster", check_id(parts[0], "school"), None
        if len(parts) == 2 and parts[1] == "feed":
            return "feed", check_id(parts[0], "school"), None
        if len(parts) == 3 and parts[1:] == ["roster", "delta"]:
            return "roster/delta", check_id(parts[0], "school"), None
        if len(parts) == 3 and parts[2] in ("events", "ack", "status"):
            return parts[2], check_id(parts[0], "school"), check_id(parts[1], "kiosk")
        raise ProtocolError(f"topic {topic!r} is not a protocol v1 topic")


# --- models -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Lenient(BaseModel):
    # Messages central sends may gain fields in later versions; a v1 kiosk ignores them.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


def _check_time(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value[:40]!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    try:
        inside = EARLIEST <= parsed.astimezone(UTC) < LATEST
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past datetime.max in UTC
        inside = False
    if not inside:
        raise ValueError(f"{value!r} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return value


#: An RFC 3339 time with an offset, between EARLIEST and LATEST.
Time = Annotated[StrictStr, AfterValidator(_check_time)]


def find_nul(value: Any) -> str | None:
    """Where a NUL character sits in a decoded message (``note``, ``batch.3.card``), or None.

    PostgreSQL refuses NUL in text, and no field of the protocol has a use for it."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where or "payload"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"{where}.key" if where else "key"
                stack.append((f"{where}.{key}" if where else str(key), child))
        elif isinstance(item, list):
            stack.extend((f"{where}.{i}" if where else str(i), child) for i, child in enumerate(item))
    return None


def _depth(value: Any) -> int:
    """How deeply a decoded message nests (a scalar is 0), without recursion; stops counting
    past MAX_DEPTH. Only containers are visited: an event's scalars cost one type check each."""
    if not isinstance(value, dict | list):
        return 0
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, level + 1))
    return deepest


class Event(_Strict):
    """One kiosk event. ``sig`` covers every other field; ``prev`` chains it to seq - 1."""

    v: Literal[1]
    id: StrictStr
    school: Ident
    kiosk: Ident
    seq: Seq
    prev: StrictStr
    at: Time
    kind: Kind
    card: Annotated[StrictStr, Field(max_length=64)] | None = None
    student: Annotated[StrictStr, Field(max_length=64)] | None = None
    guardian: Annotated[StrictStr, Field(max_length=64)] | None = None
    staff: Annotated[StrictStr, Field(max_length=64)] | None = None
    session: Annotated[StrictStr, Field(max_length=64)] | None = None
    reason: Text | None = None
    operator: Annotated[StrictStr, Field(max_length=64)] | None = None
    note: Text | None = None
    roster_version: Count | None = None
    # Extension of v1 (optional, signed like the rest): the kiosk's boot counter and the
    # milliseconds since that boot on a monotonic clock. Wall clocks jump (a Raspberry Pi boots
    # with the wrong time, NTP steps it); within one boot ``mono`` does not, so central can map
    # it onto its own clock and correct ``at``.
    boot: Seq | None = None
    mono: Millis | None = None
    sig: StrictStr

    @field_validator("v", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 in Python, not in the protocol
            raise ValueError("must be the integer 1")
        return value

    @field_validator("id")
    @classmethod
    def _uuid7(cls, value: str) -> str:
        if not _UUID_RE.match(value):
            raise ValueError("is not a lower-case UUIDv7")
        return value

    @field_validator("prev")
    @classmethod
    def _prev(cls, value: str) -> str:
        if value and not _HEX64_RE.match(value):
            raise ValueError("is neither empty nor 64 lower-case hex digits")
        return value

    @field_validator("sig")
    @classmethod
    def _sig(cls, value: str) -> str:
        if not _HEX64_RE.match(value):
            raise ValueError("is not 64 lower-case hex digits")
        return value

    def fields(self) -> dict[str, Any]:
        """The event as it travels: fields that are None are left out."""
        return self.model_dump(exclude_none=True)


def new_event(
    *, school: str, kiosk: str, seq: int, prev: str, at: datetime, kind: str, secret: bytes, **fields: Any
) -> dict[str, Any]:
    """Build and sign the wire form of a new event (the kiosk's side)."""
    if at.tzinfo is None:
        raise ProtocolError("an event time needs a UTC offset")
    body: dict[str, Any] = {
        "v": VERSION,
        "id": uuid7(),
        "school": school,
        "kiosk": kiosk,
        "seq": seq,
        "prev": prev,
        "at": at.isoformat(timespec="milliseconds"),
        "kind": kind,
    }
    body.update({k: v for k, v in fields.items() if v is not None})
    body["sig"] = sign(body, secret)
    Event.model_validate(body)  # refuse to emit what central would refuse
    return body


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_event(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise ProtocolError(f"an event must be a JSON object, not {type(raw).__name__}")
    # An event is flat: a NUL deeper down sits in a field of the wrong type, refused below anyway.
    nul = next((k for k, v in raw.items() if "\x00" in k or (isinstance(v, str) and "\x00" in v)), None)
    if nul is not None:
        where = "key" if "\x00" in nul else nul
        raise ProtocolError(f"bad event seq={raw.get('seq')!r}: {where}: text contains a NUL character")
    try:
        return Event.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(f"bad event seq={raw.get('seq')!r}: {_reason(exc)}") from None


def decode(payload: bytes) -> Any:
    """JSON of at most MAX_DEPTH levels, else ProtocolError (never RecursionError).

    orjson reads it first (a sixth of the standard library's time, for every event central takes in);
    what it refuses, or reads into anything but objects, lists, strings, integers, booleans and null
    within MAX_DEPTH (a float: orjson reads an integer past 64 bits as one), goes the standard
    library's way, which reads it or refuses it, naming why, as it always did."""
    return _read(payload)[0]


def _read(payload: bytes) -> tuple[Any, bool]:
    """``decode``'s value, and whether orjson read it (it is then what canonical_json writes through orjson)."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _decode_stdlib(payload), False
    if _plain(data):
        return data, True
    return _decode_stdlib(payload), False


def _decode_stdlib(payload: bytes) -> Any:
    """The definition of ``decode``: it must give the same value or the same error."""
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ProtocolError(f"payload nests deeper than {MAX_DEPTH} levels") from None
    if _depth(data) > MAX_DEPTH:
        raise ProtocolError(f"payload nests deeper than {MAX_DEPTH} levels")
    return data


def _refuse_constant(name: str) -> Any:
    raise ProtocolError(f"payload contains {name}, which canonical JSON forbids")


def split_events_payload(payload: bytes) -> list[Any]:
    """The raw event objects of one message on an events topic: one event or a batch.

    Raises ProtocolError for a payload that is not JSON, not an object, or a malformed batch;
    the events inside are returned unvalidated so that one bad event does not sink the rest.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD}")
    data = decode(payload)
    if not isinstance(data, dict):
        raise ProtocolError(f"payload must be a JSON object, not {type(data).__name__}")
    if "batch" in data:
        if set(data) != {"v", "batch"}:
            raise ProtocolError(f"a batch has only 'v' and 'batch', not {sorted(set(data) - {'v', 'batch'})}")
        if data["v"] != VERSION or isinstance(data["v"], bool):
            raise ProtocolError(f"batch version {data['v']!r} is not 1")
        if not isinstance(data["batch"], list) or not data["batch"]:
            raise ProtocolError("'batch' must be a non-empty list of events")
        if len(data["batch"]) > MAX_BATCH:
            raise ProtocolError(f"a batch holds at most {MAX_BATCH} events, not {len(data['batch'])}")
        return list(data["batch"])
    return [data]


def batch_payload(events: list[dict[str, Any]]) -> bytes:
    if len(events) == 1:
        return canonical_json(events[0])
    return canonical_json({"v": VERSION, "batch": events})


class Ack(_Lenient):
    v: Literal[1]
    # The kiosk the ack is for: signed with the rest, so a genuine ack replayed on another kiosk's
    # topic is refused there (optional in the model; the sync client requires them to match).
    school: Ident | None = None
    kiosk: Ident | None = None
    upto: Count
    server_time: Time
    resend_from: Seq | None = None
    # Seqs of this kiosk's own events (signed, in their chain) that central refused as malformed:
    # covered by ``upto`` all the same, so the chain moves on past them; the kiosk records a fault.
    refused: Annotated[list[Seq], Field(max_length=MAX_BATCH)] = []
    # The highest seq central holds for this kiosk and that event's hash, sent when the kiosk shows
    # it knows less (a resend of a stored seq, a status behind central): a kiosk restored from an old
    # backup resumes its numbering and its chain after them. Older kiosks ignore both.
    head: Count | None = None
    head_hash: Annotated[StrictStr, Field(pattern=_HEX64_RE.pattern)] | None = None


class RosterLink(_Lenient):
    student: StrictStr
    may_pick_up: StrictBool = True
    barred: StrictBool = False
    # The school's local dates (YYYY-MM-DD, inclusive) the link holds; absent is open-ended.
    valid_from: StrictStr | None = None
    valid_until: StrictStr | None = None


class RosterStudent(_Lenient):
    """What a gate needs to know of a child, and no more."""

    id: StrictStr
    name: StrictStr
    class_name: StrictStr = Field(alias="class")
    cards: list[StrictStr] = []
    enrolled: StrictBool = True
    may_leave_alone: StrictBool = False
    groups: list[StrictStr] = []  # the groups of the student's active enrollments (RosterSession.group)

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, populate_by_name=True)


class RosterGuardian(_Lenient):
    id: StrictStr
    name: StrictStr
    relation: StrictStr = ""
    phone_masked: StrictStr = ""
    cards: list[StrictStr] = []
    links: list[RosterLink] = []


class RosterStaff(_Lenient):
    """A staff member who may serve (third parties only once approved): taps in and out (P6.3).
    ``guard``: may sign in at a gate kiosk as the guard on duty (a guard by kind, or allowed by the school)."""

    id: StrictStr
    name: StrictStr
    kind: StrictStr = ""
    cards: list[StrictStr] = []
    guard: StrictBool = False


class RosterSession(_Lenient):
    """One group's session on one date; times RFC 3339 in UTC."""

    id: StrictStr
    group: StrictStr
    group_name: StrictStr = ""
    place: StrictStr = ""
    date: StrictStr
    start: Time
    end: Time
    absent_after: Time | None = None  # start + check-in grace (safety invariant 4)
    overdue_after: Time | None = None  # end + pickup grace (safety invariant 3)
    staff: list[StrictStr] = []  # RosterStaff ids on duty


class RosterCode(_Lenient):
    """A live one-time pickup code (P9.4): never the code, only each kiosk's keyed digest of it."""

    id: StrictStr
    student: StrictStr
    day: StrictStr  # the school's local date (YYYY-MM-DD) the code is good for
    person: StrictStr  # the one named person who may use it
    # The guardian (RosterGuardian id) who issued it; absent when the school did. The gate refuses the
    # code when that guardian's link to the child no longer lets them take the child (P9.4).
    issuer: StrictStr | None = None
    digests: dict[StrictStr, StrictStr] = {}  # kiosk id -> gateway.pickup.code_digest with that kiosk's secret


class RosterSnapshot(_Lenient):
    v: Literal[1]
    school: Ident
    version: Count
    generated_at: Time
    students: list[RosterStudent] = []
    guardians: list[RosterGuardian] = []
    staff: list[RosterStaff] = []
    sessions: list[RosterSession] = []
    codes: list[RosterCode] = []


class RosterDelta(_Lenient):
    v: Literal[1]
    school: Ident
    from_: Count = Field(alias="from")
    to: Count
    students: list[RosterStudent] = []
    guardians: list[RosterGuardian] = []
    removed_students: list[StrictStr] = []
    removed_guardians: list[StrictStr] = []
    staff: list[RosterStaff] = []
    sessions: list[RosterSession] = []
    removed_staff: list[StrictStr] = []
    removed_sessions: list[StrictStr] = []
    codes: list[RosterCode] = []
    removed_codes: list[StrictStr] = []

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, populate_by_name=True)


class FeedEvent(_Lenient):
    """One event of a school's feed: what a gate needs of another gate's event (no card number, no
    chain). ``pos`` is its place in the school's feed, given by central in the order it stored them."""

    pos: Seq
    id: StrictStr
    kiosk: Ident
    seq: Seq
    kind: Kind
    at: Time
    student: Annotated[StrictStr, Field(max_length=64)] | None = None
    guardian: Annotated[StrictStr, Field(max_length=64)] | None = None
    staff: Annotated[StrictStr, Field(max_length=64)] | None = None
    session: Annotated[StrictStr, Field(max_length=64)] | None = None
    reason: Text | None = None
    operator: Annotated[StrictStr, Field(max_length=64)] | None = None
    note: Text | None = None


#: The fields of a stored event that travel on the feed (and their names there).
FEED_FIELDS = ("id", "kiosk", "seq", "kind", "at", "student", "guardian", "staff", "session", "reason", "operator", "note")


class Feed(_Lenient):
    """A run of a school's feed, signed by central: published on ``{school}/feed`` after each stored
    batch, and the answer to a kiosk's catch-up (``after`` its last position). ``head`` is the
    school's last position when it was sent: a kiosk whose last position is below it has more to fetch."""

    v: Literal[1]
    school: Ident
    events: Annotated[list[FeedEvent], Field(max_length=MAX_BATCH)] = []
    head: Count


def feed_message(school: str, events: list[dict[str, Any]], head: int) -> dict[str, Any]:
    """The feed message central signs and sends: each event with ``pos`` and ``FEED_FIELDS`` (None left out)."""
    return {
        "v": 1,
        "school": school,
        "head": head,
        "events": [{k: v for k, v in e.items() if v is not None and (k == "pos" or k in FEED_FIELDS)} for e in events],
    }


COMPRESS_OVER = 16 * 1024  # bytes: a roster larger than this travels compressed


def snapshot_payload(header: dict[str, Any], people: dict[str, Any]) -> bytes:
    """The retained roster message. Past COMPRESS_OVER bytes the people go zlib-compressed and
    base64-encoded under ``data``, flagged by ``"encoding": "zlib"`` (a 3,000-student roster
    shrinks about tenfold; kiosks on a school's Wi-Fi fetch it after every restart)."""
    body = canonical_json(people)
    if len(body) <= COMPRESS_OVER:
        return canonical_json({**header, **people})
    data = base64.b64encode(zlib.compress(body, 9)).decode()
    return canonical_json({**header, "encoding": "zlib", "data": data})


def parse_snapshot(payload: bytes) -> RosterSnapshot:
    data = decode(payload)
    if isinstance(data, dict) and "encoding" in data:
        if data["encoding"] != "zlib" or not isinstance(data.get("data"), str):
            raise ProtocolError(f"roster encoding {data['encoding']!r} is not zlib with base64 data")
        try:
            people = decode(zlib.decompress(base64.b64decode(data.pop("data"), validate=True)))
        except (ValueError, zlib.error) as exc:
            raise ProtocolError(f"compressed roster does not decode: {exc}") from None
        if not isinstance(people, dict):
            raise ProtocolError("compressed roster does not hold an object")
        data.pop("encoding")
        data.update(people)
    nul = find_nul(data)
    if nul is not None:
        raise ProtocolError(f"bad RosterSnapshot: {nul}: text contains a NUL character")
    try:
        return RosterSnapshot.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(f"bad RosterSnapshot: {_reason(exc)}") from None


class Status(_Lenient):
    v: Literal[1]
    online: StrictBool
    # Every status but the will carries these; the will (``online: false`` and the boot only) is
    # set once per connection, so it leaves them out and readers keep the last values they had.
    queue: Count | None = None
    last_seq: Count | None = None
    roster_version: Count | None = None
    at: Time | None = None
    # Extensions (optional): the clock pair of the moment the status was sent, the kiosk's
    # estimate of (its wall clock - central's) from acks, and the card reader's state.
    boot: Seq | None = None
    mono: Millis | None = None
    clock_offset_ms: Annotated[StrictInt, Field(ge=-(2**62), le=2**62)] | None = None
    reader: StrictStr | None = None
    # Extension: hex HMAC-SHA256 with the kiosk's secret over every other field (``sign``), as an
    # event's. Central takes clock samples only from a status that carries a valid one.
    sig: StrictStr | None = None
    # Messages on central's topics (acks, rosters) this kiosk refused since it started because
    # central's key did not verify them: a forger at work on the broker.
    refused: Count | None = None
    # Extensions (issue 13): the last seq central acknowledged, and the guard signed in at the
    # console (a staff id), absent while nobody is.
    acked_seq: Count | None = None
    guard: Annotated[StrictStr, Field(max_length=64)] | None = None

    @model_validator(mode="after")
    def _values_unless_will(self) -> Status:
        if self.online and None in (self.queue, self.last_seq, self.roster_version, self.at):
            raise ValueError("an online status carries queue, last_seq, roster_version and at")
        return self

    @property
    def is_will(self) -> bool:
        """The small offline message the broker sends for a kiosk gone without a word: no values."""
        return not self.online and self.at is None


def status_payload(status: Status, secret: bytes | None) -> bytes:
    """The wire form of a status, signed with the kiosk's secret when it has one."""
    fields = status.model_dump(exclude_none=True)
    if secret:
        fields["sig"] = sign(fields, secret)
    return canonical_json(fields)


def parse_message(model: type[BaseModel], payload: bytes) -> Any:
    """Decode and validate a non-event message (ack, roster, delta, status)."""
    data = decode(payload)
    nul = find_nul(data)
    if nul is not None:
        raise ProtocolError(f"bad {model.__name__}: {nul}: text contains a NUL character")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(f"bad {model.__name__}: {_reason(exc)}") from None


def dump(model: BaseModel) -> bytes:
    return canonical_json(model.model_dump(by_alias=True, exclude_none=True))
