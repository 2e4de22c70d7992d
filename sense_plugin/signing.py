"""The server's Ed25519 signing key: created once, signs every manifest, checks copies.

A signature is the raw 64-byte Ed25519 signature over the exact bytes of ``manifest.xml``,
so anyone can check a copy with ``openssl pkeyutl -verify -pubin -inkey key.pem -rawin
-in manifest.xml -sigfile manifest.sig`` without this program.

A site of several servers signs with one key (:func:`site_signer`), derived from the site
secret every server of it holds, so the key any one server publishes checks the manifests of
all of them (docs/security.rst, "One signing key per site").
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

KEY_FILE = "signing-key.pem"
#: Salt of the site key's derivation (a new version makes a new key).
SITE_KEY_SALT = b"sense_plugin site manifest signing key v1"
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


def site_signer(site_secret: str) -> Signer:
    """The one signing key of a site: the same on every server that holds ``site_secret``.

    scrypt (slow on purpose) derives the 32-byte Ed25519 seed, so the published public key is
    no shortcut to guessing the secret. Blocking (about 0.1 s): run it off the event loop.
    """
    seed = hashlib.scrypt(site_secret.encode(), salt=SITE_KEY_SALT, n=2**14, r=8, p=1,
                          dklen=32)
    return Signer(Ed25519PrivateKey.from_private_bytes(seed))


def public_pem(key: Ed25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM text (what ``openssl pkeyutl -pubin`` reads)."""
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the DER public key, lowercase hex (docs/rendering.rst)."""
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
