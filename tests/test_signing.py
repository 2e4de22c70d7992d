"""The Ed25519 signing key (signing.py), checked against the openssl command line."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sense_plugin import signing


def test_key_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / signing.KEY_FILE
    first = signing.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = signing.load_or_create(path)
    assert again.fingerprint == first.fingerprint  # read back, never replaced
    der = first.public_key.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert first.fingerprint == hashlib.sha256(der).hexdigest()
    assert first.public_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_sign_and_verify_and_one_changed_byte(tmp_path: Path) -> None:
    signer = signing.load_or_create(tmp_path / signing.KEY_FILE)
    data = b'<?xml version="1.0"?><manifest exportid="1"/>'
    signature = signer.sign(data)
    assert len(signature) == signing.SIGNATURE_BYTES
    public = signing.load_public_key(signer.public_pem.encode())
    assert signing.verify(public, data, signature)
    assert not signing.verify(public, data.replace(b"1", b"2"), signature)
    assert not signing.verify(public, data, signature[:-1])
    other = signing.load_or_create(tmp_path / "other.pem")
    assert not signing.verify(other.public_key, data, signature)


def test_wrong_key_type_and_missing_key_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(signing.SigningKeyError, match="not an Ed25519 key"):
        signing.load_or_create(path)
    with pytest.raises(signing.SigningKeyError, match="cannot read"):
        signing.load_or_create(tmp_path / "absent.pem", create=False)
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(signing.SigningKeyError, match="not an unencrypted PEM"):
        signing.load_or_create(tmp_path / "junk.pem")
    with pytest.raises(signing.SigningKeyError, match="not an Ed25519 key"):
        pub = ec.generate_private_key(ec.SECP256R1()).public_key()
        signing.load_public_key(pub.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
def test_openssl_pkeyutl_checks_our_signature(tmp_path: Path) -> None:
    signer = signing.load_or_create(tmp_path / signing.KEY_FILE)
    manifest, sig, key = tmp_path / "manifest.xml", tmp_path / "manifest.sig", tmp_path / "k.pem"
    manifest.write_bytes(b"<manifest>evidence</manifest>\n")
    sig.write_bytes(signer.sign(manifest.read_bytes()))
    key.write_text(signer.public_pem)
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
               "-in", str(manifest), "-sigfile", str(sig)]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    manifest.write_bytes(b"<manifest>evidencE</manifest>\n")
    bad = subprocess.run(command, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
