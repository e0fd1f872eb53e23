"""Central's own Ed25519 key: it signs every message central publishes (acks, rosters, deltas).

Made once, on first use, in the file ``Settings.signing_key_file`` (PEM, PKCS#8, mode 0600), and
kept: kiosks are given the public half when they are registered and refuse whatever it does not
verify. Losing the file means registering every kiosk's central key again.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import protocol


class SigningKeyError(Exception):
    """Central's signing key file exists but cannot be used; the message names the file and why."""


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """Central's key from ``path``, made there first if there is none (two processes at once make one)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            # O_EXCL: a second process starting at the same moment reads the first one's key
            # instead of writing its own, so there is only ever one central key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            return key
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"central's signing key {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"central's signing key {path} is not an Ed25519 private key")
    return key


def public_hex(path: Path) -> str:
    """The public key kiosks are given (64 hex digits), making the key first if need be."""
    return protocol.public_key_hex(load_or_create(path))


def session_secret(path: Path) -> str:
    """The pages' session secret (central/web) from ``path``, made there first if there is none
    (64 hex digits, mode 0600; two processes at once make one, as for the signing key)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise SigningKeyError(f"the session secret in {path} is shorter than 32 characters")
    return secret
