"""Proof of the site secret on server-to-server calls: HMAC-SHA256, never the secret itself.

The header ``X-Sense-Proof: v1;ts=UNIX;nonce=HEX;sig=HEX`` signs, with ``[cluster]
site_secret`` as the HMAC key, the lines: ``v1``, the method, the Host, the path with its
query, the timestamp, the nonce and the SHA-256 of the body. The receiver refuses a proof
older (or newer) than ``MAX_SKEW_S``, a nonce it has seen within that window, and any
other host, path or body than the one signed (so a captured call cannot be replayed, nor
sent to another server of the site).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict

HEADER = "X-Sense-Proof"
MAX_SKEW_S = 60.0
_PROOF = re.compile(r"v1;ts=(\d{1,12});nonce=([0-9a-f]{32});sig=([0-9a-f]{64})")


class ProofError(Exception):
    """A missing, malformed, stale, replayed or wrong proof (the message says which)."""


def _signature(secret: str, method: str, host: str, path_qs: str, ts: int, nonce: str,
               body: bytes) -> str:
    message = "\n".join(("v1", method.upper(), host.lower(), path_qs, str(ts), nonce,
                         hashlib.sha256(body).hexdigest()))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, method: str, host: str, path_qs: str, body: bytes = b"",
         *, now: float | None = None) -> str:
    """The ``X-Sense-Proof`` value for one request (``host`` as in its Host header)."""
    ts = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    sig = _signature(secret, method, host, path_qs, ts, nonce, body)
    return f"v1;ts={ts};nonce={nonce};sig={sig}"


class Verifier:
    """Checks proofs; remembers the nonces of the last ``MAX_SKEW_S`` seconds."""

    def __init__(self, secret: str, *, max_nonces: int = 100_000) -> None:
        self._secret = secret
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max_nonces = max_nonces

    def verify(self, proof: str | None, method: str, host: str, path_qs: str, body: bytes,
               *, now: float | None = None) -> None:
        """Return if ``proof`` is valid for this request, else raise :class:`ProofError`."""
        if not proof:
            raise ProofError(f"missing {HEADER} header (server-to-server calls are signed)")
        match = _PROOF.fullmatch(proof.strip())
        if match is None:
            raise ProofError(f"malformed {HEADER} header")
        ts, nonce, sig = int(match[1]), match[2], match[3]
        current = time.time() if now is None else now
        if abs(current - ts) > MAX_SKEW_S:
            raise ProofError(f"proof timestamp is {current - ts:+.0f} s off "
                             f"(at most {MAX_SKEW_S:g} s; are the clocks synchronised?)")
        expected = _signature(self._secret, method, host, path_qs, ts, nonce, body)
        if not hmac.compare_digest(expected, sig):
            raise ProofError("wrong proof (another site_secret, or a changed request)")
        self._forget(current)
        if nonce in self._seen:
            raise ProofError("proof already used (replayed nonce)")
        if len(self._seen) >= self._max_nonces:
            raise ProofError("too many signed calls in the last minute")
        self._seen[nonce] = current

    def _forget(self, now: float) -> None:
        while self._seen:
            nonce, seen_at = next(iter(self._seen.items()))
            if now - seen_at <= 2 * MAX_SKEW_S:
                break
            del self._seen[nonce]
