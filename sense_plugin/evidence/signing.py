"""The server's Ed25519 signing key: created once, signs every manifest, checks copies.

A signature is the raw 64-byte Ed25519 signature over the exact bytes of ``manifest.xml``,
so anyone can check a copy with ``openssl pkeyutl -verify -pubin -inkey key.pem -rawin
-in manifest.xml -sigfile manifest.sig`` without this program.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sense_plugin.errors import ConfigError

KEY_FILE = "signing-key.pem"
SIGNATURE_NAME = "manifest.sig"
SIGNATURE_BYTES = 64


class SigningKeyError(Exception):
    """The configured key cannot be read, or is not an Ed25519 key."""


@dataclass(frozen=True)
class Signer:
    """A loaded private key and the public facts published about it."""

    private_key: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_pem(self) -> str:
        return public_pem(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


def load_or_create(path: Path, create: bool = True) -> Signer:
    """The key at ``path``; when it is missing and ``create``, a new one written mode 0600.

    Creation is exclusive (``O_EXCL``), so two servers starting at once never overwrite each
    other's key; the loser reads the winner's.
    """
    if create and not path.exists():
        new_key = Ed25519PrivateKey.generate()
        pem = new_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 key")
    return Signer(loaded)


def server_signer(data_dir: Path, configured: Path | None, source: str) -> Signer:
    """The server's key: ``configured`` (must exist), else ``data_dir``'s, created if missing.

    Blocking. A configured key that is missing, unreadable or not Ed25519 is a
    :class:`ConfigError` naming the file (the server does not start: exit 2).
    """
    try:
        if configured is not None:
            return load_or_create(configured, create=False)
        return load_or_create(data_dir / KEY_FILE)
    except SigningKeyError as exc:
        raise ConfigError(f"{source}: [evidence] signing_key: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot create the signing key "
                          f"{data_dir / KEY_FILE}: {exc.strerror}") from None


def public_pem(key: Ed25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM text (what ``openssl pkeyutl -pubin`` reads)."""
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the DER public key, lowercase hex (SPEC §11)."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM (a private key PEM is accepted too: its public half is used)."""
    try:
        key: object = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"not a PEM public key: {exc}") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"the key is a {type(key).__name__}, not an Ed25519 key")
    return key


def verify(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``key``'s signature of exactly ``data``."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
