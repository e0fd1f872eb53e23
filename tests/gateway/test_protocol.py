import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway import protocol
from gateway.protocol import ProtocolError

SECRET = bytes.fromhex("11" * 32)
AT = datetime(2026, 11, 30, 16, 5, 1, 250000, tzinfo=timezone(timedelta(hours=8)))


def make(seq=1, prev="", kind="checkin", **fields):
    return protocol.new_event(
        school="s1", kiosk="k1", seq=seq, prev=prev, at=AT, kind=kind, secret=SECRET, **fields
    )


def test_canonical_json_is_stable_sorted_compact_utf8():
    a = protocol.canonical_json({"b": 1, "a": "王", "c": [1, {"z": 0, "y": None}]})
    b = protocol.canonical_json({"c": [1, {"y": None, "z": 0}], "a": "王", "b": 1})
    assert a == b == '{"a":"王","b":1,"c":[1,{"y":null,"z":0}]}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        protocol.canonical_json({"x": float("nan")})


def test_signed_event_verifies_and_any_changed_byte_breaks_it():
    event = make(student="20260001", card="04A1B2C3")
    assert protocol.verify(event, SECRET)
    wire = protocol.canonical_json(event)
    for i in range(len(wire)):
        flipped = bytearray(wire)
        flipped[i] ^= 0x01
        try:
            changed = json.loads(flipped.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if changed == event:
            continue
        assert not protocol.verify(changed, SECRET), f"byte {i} changed and still verified"


def test_wrong_secret_fails():
    assert not protocol.verify(make(), bytes.fromhex("22" * 32))


def test_chain_links_each_event_to_the_hash_of_the_one_before():
    first = make(seq=1)
    second = make(seq=2, prev=protocol.event_hash(first))
    assert second["prev"] == protocol.event_hash(first)
    tampered = dict(first, student="someone-else")
    assert protocol.event_hash(tampered) != second["prev"]


def test_ids_are_uuid7_and_time_ordered():
    ids = [protocol.uuid7() for _ in range(50)]
    assert all(i[14] == "7" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"kind": "teleport"}, "kind"),
        ({"seq": "3"}, "seq"),
        ({"seq": 0}, "seq"),
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"at": "2026-11-30T16:05:01"}, "offset"),
        ({"school": "has space"}, "school"),
        ({"prev": "xyz"}, "prev"),
        ({"colour": "red"}, "colour"),
        ({"roster_version": 1.5}, "roster_version"),
    ],
)
def test_strict_event_refuses_with_a_reason(change, needle):
    raw = dict(make(), **change)
    with pytest.raises(ProtocolError) as err:
        protocol.parse_event(raw)
    assert needle in str(err.value)


def test_missing_field_is_named():
    raw = make()
    del raw["sig"]
    with pytest.raises(ProtocolError, match="sig"):
        protocol.parse_event(raw)


def test_new_event_refuses_naive_time():
    with pytest.raises(ProtocolError):
        protocol.new_event(school="s", kiosk="k", seq=1, prev="", at=datetime(2026, 1, 1), kind="checkin", secret=SECRET)


def test_batch_and_single_payloads_split_into_events():
    one, two = make(seq=1), make(seq=2)
    assert protocol.split_events_payload(protocol.batch_payload([one])) == [one]
    assert protocol.split_events_payload(protocol.batch_payload([one, two])) == [one, two]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1,2]", "object"),
        (b'{"v":1,"batch":[]}', "non-empty"),
        (b'{"v":2,"batch":[{}]}', "version"),
        (b'{"v":1,"batch":[{}],"x":1}', "only"),
        (b'{"v":1,"x":NaN}', "NaN"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(payload, needle):
    with pytest.raises(ProtocolError) as err:
        protocol.split_events_payload(payload)
    assert needle in str(err.value)


def test_topics_build_and_parse():
    topics = protocol.Topics("sg/v1")
    assert topics.events("s1", "k1") == "sg/v1/s1/k1/events"
    assert topics.parse("sg/v1/s1/k1/events") == ("events", "s1", "k1")
    assert topics.parse("sg/v1/s1/roster") == ("roster", "s1", None)
    assert topics.parse("sg/v1/s1/roster/delta") == ("roster/delta", "s1", None)
    assert topics.shared_events() == "$share/central/sg/v1/+/+/events"
    for bad in ("sg/v2/s1/k1/events", "sg/v1/s1/k1/other", "sg/v1/s 1/k1/events"):
        with pytest.raises(ProtocolError):
            topics.parse(bad)
    with pytest.raises(ProtocolError):
        topics.events("s1", "k/1")


def test_ack_and_roster_messages_parse_and_ignore_fields_of_later_versions():
    ack = protocol.parse_message(
        protocol.Ack, b'{"v":1,"upto":5,"server_time":"2026-11-30T08:00:00+00:00","resend_from":6,"new":1}'
    )
    assert (ack.upto, ack.resend_from) == (5, 6)
    delta = protocol.parse_message(
        protocol.RosterDelta, b'{"v":1,"school":"s1","from":1,"to":2,"students":[{"id":"1","name":"A","class":"3-1"}]}'
    )
    assert delta.from_ == 1 and delta.students[0].class_name == "3-1"
    with pytest.raises(ProtocolError, match="upto"):
        protocol.parse_message(protocol.Ack, b'{"v":1,"upto":"5","server_time":"2026-11-30T08:00:00+00:00"}')


def test_status_round_trip():
    status = protocol.Status(v=1, online=True, queue=3, last_seq=9, roster_version=2, at=datetime.now(UTC).isoformat())
    assert protocol.parse_message(protocol.Status, protocol.dump(status)) == status


def _people(n):
    return {
        "students": [
            {"id": f"2026{i:04d}", "name": f"学生{i}", "class": "三年级1班", "cards": [f"{0x04000000 + i:08X}"]}
            for i in range(n)
        ],
        "guardians": [],
    }


def test_a_large_roster_travels_compressed_and_flagged():
    header = {"v": 1, "school": "s1", "version": 7, "generated_at": "2026-11-30T00:00:00+00:00"}
    payload = protocol.snapshot_payload(header, _people(3000))
    data = json.loads(payload)
    assert data["encoding"] == "zlib" and "students" not in data
    plain = protocol.canonical_json({**header, **_people(3000)})
    assert len(payload) * 4 < len(plain)
    snap = protocol.parse_snapshot(payload)
    assert snap.version == 7 and len(snap.students) == 3000 and snap.students[5].name == "学生5"


def test_a_small_roster_travels_plain():
    header = {"v": 1, "school": "s1", "version": 1, "generated_at": "2026-11-30T00:00:00+00:00"}
    payload = protocol.snapshot_payload(header, _people(3))
    assert "encoding" not in json.loads(payload)
    assert len(protocol.parse_snapshot(payload).students) == 3


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":1,"school":"s1","version":1,"generated_at":"x","encoding":"gzip","data":""}',
        b'{"v":1,"school":"s1","version":1,"generated_at":"x","encoding":"zlib","data":"!!notbase64"}',
        b'{"v":1,"school":"s1","version":1,"generated_at":"x","encoding":"zlib","data":"eJwDAAAAAAE="}',
    ],
)
def test_a_bad_compressed_roster_is_refused_with_a_reason(payload):
    with pytest.raises(ProtocolError):
        protocol.parse_snapshot(payload)


# --- issue 11: poison messages and time fields bounded at the protocol ----------------------------


def test_json_nested_100000_deep_is_a_protocol_error_not_a_recursion_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ProtocolError, match="nests deeper than 32"):
        protocol.split_events_payload(deep)


def test_json_nested_past_the_limit_is_refused_and_at_the_limit_decodes():
    assert protocol.decode(b"[" * 32 + b"]" * 32) is not None
    with pytest.raises(ProtocolError, match="nests deeper than 32"):
        protocol.decode(b"[" * 33 + b"]" * 33)
    with pytest.raises(ProtocolError, match="nests deeper"):
        protocol.parse_message(protocol.Ack, b'{"v":1,"upto":1,"server_time":' + b"[" * 40 + b"]" * 40 + b"}")


def test_a_raw_nul_payload_is_refused_as_malformed():
    with pytest.raises(ProtocolError, match="not JSON"):
        protocol.split_events_payload(b"\x00")


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"note": "a\x00b"}, "note: text contains a NUL"),
        ({"card": "\x00"}, "card: text contains a NUL"),
        ({"x\x00": 1}, "key: text contains a NUL"),
    ],
)
def test_text_with_nul_is_refused_naming_the_field(change, needle):
    with pytest.raises(ProtocolError, match=needle):
        protocol.parse_event({**make(), **change})


def test_nul_in_a_status_or_ack_is_refused():
    with pytest.raises(ProtocolError, match="reader: text contains a NUL"):
        protocol.parse_message(
            protocol.Status,
            b'{"v":1,"online":true,"queue":0,"last_seq":0,"roster_version":0,"at":"2026-11-30T08:00:00+00:00","reader":"ok\\u0000"}',
        )


@pytest.mark.parametrize(
    "at",
    [
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59-05:00",  # past datetime.max once in UTC: OverflowError before
        "0001-01-01T00:00:00+01:00",
        "1999-12-31T23:59:59+00:00",
        "2100-01-01T00:00:00+00:00",
    ],
)
def test_a_time_outside_2000_to_2099_is_refused_in_every_message(at):
    with pytest.raises(ProtocolError, match="outside 2000-2099"):
        protocol.parse_event({**make(), "at": at})
    with pytest.raises(ProtocolError, match="outside 2000-2099"):
        protocol.parse_message(protocol.Ack, json.dumps({"v": 1, "upto": 1, "server_time": at}).encode())
    status = {"v": 1, "online": True, "queue": 0, "last_seq": 0, "roster_version": 0, "at": at}
    with pytest.raises(ProtocolError, match="outside 2000-2099"):
        protocol.parse_message(protocol.Status, json.dumps(status).encode())


def test_times_at_the_edges_of_the_range_are_accepted():
    for at in ("2000-01-01T00:00:00+00:00", "2099-12-31T23:59:59.999+00:00", "2000-01-01T07:00:00+07:00"):
        assert protocol.parse_event({**make(), "at": at}).at == at


def test_a_monotonic_reading_past_ten_years_is_refused():
    assert protocol.parse_event(make(boot=1, mono=315_000_000_000)).mono == 315_000_000_000
    with pytest.raises(ProtocolError, match="mono"):
        protocol.parse_event({**make(boot=1, mono=1), "mono": 2**62})
    status = {"v": 1, "online": True, "queue": 0, "last_seq": 0, "roster_version": 0, "at": "2026-11-30T08:00:00+00:00",
              "boot": 1, "mono": 400_000_000_000}
    with pytest.raises(ProtocolError, match="mono"):
        protocol.parse_message(protocol.Status, json.dumps(status).encode())


def test_a_status_is_signed_with_the_kiosks_secret_over_every_field():
    status = protocol.Status(v=1, online=True, queue=3, last_seq=9, roster_version=2, at="2026-11-30T08:00:00+00:00",
                             boot=4, mono=60_000)
    wire = json.loads(protocol.status_payload(status, SECRET))
    assert protocol.verify(wire, SECRET)
    assert not protocol.verify({**wire, "mono": 18_060_000}, SECRET)
    assert "sig" not in json.loads(protocol.status_payload(status, None))
    assert protocol.parse_message(protocol.Status, protocol.status_payload(status, SECRET)).sig == wire["sig"]


def test_an_ack_names_the_refused_seqs():
    ack = protocol.parse_message(protocol.Ack, b'{"v":1,"upto":7,"server_time":"2026-11-30T08:00:00+00:00","refused":[5,7]}')
    assert (ack.upto, ack.refused) == (7, [5, 7])
    assert protocol.parse_message(protocol.Ack, b'{"v":1,"upto":7,"server_time":"2026-11-30T08:00:00+00:00"}').refused == []
