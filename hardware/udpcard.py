"""A contactless card on nfcpy's simulated ``udp`` radio, for tests and demos.

A reader opened on ``nfc:udp:HOST:PORT`` polls by sending to PORT. ``UdpCard(PORT)`` makes a card
appear there by running nfcpy's own card emulation on the other end of that radio
(``ContactlessFrontend("udp:HOST:PORT").listen(LocalTarget(...))``), so the reader under test
goes through exactly the code it uses with real hardware, down to the anticollision exchange.

    card = UdpCard(54321)
    card.present("04A1B2C3D4E5F6")            # a 7-byte ISO 14443A UID; returns after ~1.2 s
    card.present("0102030405060708", "212F")  # a FeliCa IDm

``present`` returns once the reader has activated the card and the card has been taken away
again, so by then the reader has the tap. If no reader activates the card within ``wait``
seconds past ``hold``, it raises ``TimeoutError`` rather than let a test go on as if the card
had been read.

How long a tap takes (measured with ``NfcReader``'s defaults, 20 taps in a row, no misses):

* max(hold, 1.2 s). A reader that found no card at its last poll is still waiting out nfcpy's
  fixed 1.0 s answer timeout, and nfcpy's card side can only stop listening when a window it
  was given is over, so the card listens for at least one whole reader poll cycle.
* about 1.0 s more when the same card is presented twice in a row: the reader would take it
  for a card left lying there, so ``present`` first leaves one reader poll unanswered (a 1.0 s
  miss, longer than ``NfcReader.release_after``).

So twenty taps alternating two cards take ~24 s, and a card tapped twice takes ~3.4 s.

Use one ``UdpCard`` per reader port: the port is the radio field, and only one card side can
be bound to it at a time.

Limits of nfcpy 1.0.4's udp driver, checked here rather than failing oddly:

* 10-byte Type A UIDs cannot be emulated: its card side compares the third cascade level's
  SELECT against the second level's command byte (0x95 instead of 0x97) and never answers.
* Its Type B card side ends ``listen`` with an error at the reader's next poll, and the poll
  after that one is lost while listening again, so a Type B card answers one poll per
  ``present`` and ``hold`` does not keep it there.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time

import nfc
import nfc.clf

from .base import canonical_uid

log = logging.getLogger(__name__)

TECHS = ("106A", "212F", "424F", "106B")

# Shortest time nfcpy's card side listens at a stretch. A reader that found no card waits 1.0 s
# for an answer before it polls again, so a shorter window could miss the reader altogether.
POLL_WINDOW = 1.2


class UdpCard:
    def __init__(self, port: int, host: str = "localhost", *, wait: float = 5.0) -> None:
        self.port = port
        self.host = host
        self.wait = wait
        self.path = f"udp:{host}:{port}"
        self._lock = threading.Lock()
        self._last_uid: str | None = None
        self._closed = False

    def present(self, uid: str, tech: str = "106A", hold: float = 0.2) -> None:
        """Put a card with ``uid`` on the reader for at least ``hold`` seconds, then take it away.

        ``tech`` is the nfcpy bitrate and type: ``106A`` (4- or 7-byte UID), ``212F``/``424F``
        (8-byte IDm) or ``106B`` (4-byte NFCID0). Raises ``ValueError`` for a UID the udp radio
        cannot carry and ``TimeoutError`` when no reader activated the card.
        """
        uid = canonical_uid(uid)
        target, activation_bytes = _local_target(uid, tech)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"UdpCard on {self.path} is closed")
            if uid == self._last_uid:
                self._let_one_poll_pass()
            self._last_uid = None
            self._listen(target, hold, activation_bytes)
            self._last_uid = uid

    def close(self) -> None:
        """Refuse further taps; a ``present`` running in another thread finishes first."""
        with self._lock:
            self._closed = True

    def __enter__(self) -> UdpCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listen(self, target: nfc.clf.LocalTarget, hold: float, activation_bytes: int) -> None:
        clf = nfc.ContactlessFrontend(self.path)
        try:
            started = time.monotonic()
            give_up = started + hold + self.wait
            window = max(hold, POLL_WINDOW)
            while True:
                try:
                    clf.listen(target, window)
                except nfc.clf.CommunicationError as error:
                    # The Type B card side raises on the reader's RFOFF or silence after its answer.
                    log.debug("%s: listen ended: %r", self.path, error)
                # listen() reports nothing when the reader only senses, but the driver counts what
                # the card sent: at least one full anticollision answer means the reader saw it.
                seen = clf.device.sent_data >= activation_bytes
                if not seen and clf.device.socket.getsockname()[1] != self.port:
                    # nfcpy's listen returns at once when the port is taken (by another card side,
                    # or for a moment by a reader's ephemeral socket); wait instead of spinning.
                    log.debug("%s: port %d is in use", self.path, self.port)
                    time.sleep(0.1)
                now = time.monotonic()
                if seen and (now >= started + hold or target.brty.endswith("B")):
                    return
                if now >= give_up:
                    raise TimeoutError(
                        f"no reader activated a {target.brty} card on {self.path} "
                        f"within {hold + self.wait:.1f} s; is one reading with that technology, "
                        f"and is no other card side bound to port {self.port}?"
                    )
                window = max(started + hold - now, POLL_WINDOW)
        finally:
            clf.close()

    def _let_one_poll_pass(self) -> None:
        # Leaving one poll unanswered makes the reader wait out its 1.0 s timeout, a miss long
        # enough for it to forget the card, before the card answers again.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("0.0.0.0", self.port))  # where nfcpy's card side binds, too
            deadline = time.monotonic() + self.wait
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    frame, _ = sock.recvfrom(1024)
                except TimeoutError:
                    log.debug("%s: no reader poll to let pass", self.path)
                    return
                # Only the start of a poll counts: the rest of an anticollision cut short at the
                # end of the last tap only costs the reader a 0.5 s wait.
                if _is_poll(frame):
                    return


def _is_poll(frame: bytes) -> bool:
    try:
        brty, data = frame.decode("ascii").split()
        request = bytes.fromhex(data)
    except ValueError:
        return False  # RFOFF
    if brty.endswith("A"):
        return request in (b"\x26", b"\x52")  # SENS_REQ, ALL_REQ
    if brty.endswith("B"):
        return request[:1] == b"\x05"  # SENSB_REQ
    return request[1:2] == b"\x00"  # SENSF_REQ


def _frame_bytes(brty: str, payload: int) -> int:
    # the udp driver sends "BRTY HEXDATA" and counts the bytes of that text
    return len(brty) + 1 + 2 * payload


def _local_target(uid: str, tech: str) -> tuple[nfc.clf.LocalTarget, int]:
    """The emulated card, and how many bytes the card side sends for one full activation."""
    size = len(uid) // 2
    if tech == "106A":
        if size == 10:
            raise ValueError(
                "nfcpy 1.0.4's udp radio cannot emulate 10-byte UIDs (its CL3 SELECT is broken)"
            )
        if size not in (4, 7):
            raise ValueError(f"a Type A UID is 4 or 7 bytes on the udp radio, got {size}: {uid}")
        # 4-byte: MIFARE Classic 1K answers; 7-byte: NTAG/Ultralight answers
        sens_res, sel_res = ("0400", "08") if size == 4 else ("4400", "00")
        target = nfc.clf.LocalTarget(
            tech,
            sens_res=bytearray.fromhex(sens_res),
            sdd_res=bytearray.fromhex(uid),
            sel_res=bytearray.fromhex(sel_res),
        )
        levels = 1 if size == 4 else 2
        sens, sdd, sel = _frame_bytes(tech, 2), _frame_bytes(tech, 5), _frame_bytes(tech, 1)
        return target, sens + levels * (sdd + sel)
    if tech in ("212F", "424F"):
        if size != 8:
            raise ValueError(f"a FeliCa IDm is 8 bytes, got {size}: {uid}")
        pmm, system_code = "0120220427674EFF", "12FC"
        sensf_res = bytearray.fromhex("01" + uid + pmm + system_code)
        target = nfc.clf.LocalTarget(tech, sensf_res=sensf_res)
        return target, _frame_bytes(tech, 18)  # SENSF_RES without the optional system code
    if tech == "106B":
        if size != 4:
            raise ValueError(f"a Type B NFCID0 is 4 bytes, got {size}: {uid}")
        sensb_res = bytearray.fromhex("50" + uid + "00000000" + "008185")
        return nfc.clf.LocalTarget(tech, sensb_res=sensb_res), _frame_bytes(tech, len(sensb_res))
    raise ValueError(f"tech must be one of {', '.join(TECHS)}, got {tech!r}")


def main(argv: list[str] | None = None) -> None:
    """``python -m hardware.udpcard PORT [UID[/TECH] ...]``: tap the UIDs given, or one per
    line typed on stdin, to a reader on ``nfc:udp:localhost:PORT`` (for the demo)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or not args[0].isdigit():
        sys.exit("usage: python -m hardware.udpcard PORT [UID[/TECH] ...]")
    card = UdpCard(int(args[0]))
    for word in args[1:] or (w for line in sys.stdin for w in line.split()):
        uid, _, tech = word.partition("/")
        try:
            card.present(uid, tech or "106A")
        except (ValueError, TimeoutError) as error:
            print(f"{word}: {error}", file=sys.stderr)
        else:
            print(f"tapped {uid} ({tech or '106A'})")


if __name__ == "__main__":
    main()
