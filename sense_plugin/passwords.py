"""Salted scrypt password hashes: ``scrypt$n$r$p$salt$hash`` (base64 parts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

_N, _R, _P, _LEN = 2**14, 8, 1, 32


def hash_password(password: str, params: tuple[int, int, int] = (_N, _R, _P)) -> str:
    """Return a new salted scrypt hash of ``password`` for the config file.

    ``params`` are scrypt's (n, r, p); the default is what ``hash-password`` writes.
    """
    n, r, p = params
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=_LEN,
                            maxmem=256 * 1024 * 1024)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def hash_params(encoded: str) -> tuple[int, int, int] | None:
    """The (n, r, p) of an encoded hash, or None when it is not a well-formed scrypt hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        return int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


def verify_password(password: str, encoded: str) -> bool:
    """Check ``password`` against an encoded hash in constant time; False if malformed."""
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(_unb64(expected)), maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
