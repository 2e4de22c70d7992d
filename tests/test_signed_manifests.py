"""Signed manifests (docs/rendering.rst) over the real app: manifest.sig, the published key,
verify --key.

The signature is checked three independent ways: with ``cryptography`` against the key from
getServerOptions, with the openssl command line, and with ``sense-plugin verify --key``.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from apiclient import command
from conftest import API_DEVICES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_manifest import export_dir, finished_export

from sense_plugin import signing
from sense_plugin.cli import main
from sense_plugin.errors import ConfigError

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]


async def download(client: Any, export_id: str, name: str) -> bytes:
    response = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export_id, "file": name})
    assert response.status == 200, await response.text()
    return bytes(await response.read())


async def published_key(client: Any) -> tuple[str, str]:
    options = (await command(client, "getServerOptions")).find("serveroptions")
    return options.findtext("signingkey"), options.findtext("signingkeyfingerprint")


async def test_every_manifest_is_signed_by_the_published_key(
        client: Any, make_config: Any, api_archive: dict[str, Any], tmp_path: Path) -> None:
    export = await finished_export(client, api_archive, (STEADY, 5, 9), path="signed")
    assert export.findtext("status") == "COMPLETED"
    assert export.findtext("manifest/name") == "manifest.xml"
    assert export.findtext("manifest/signature") == "manifest.sig"
    names = [f.findtext("name") for f in export.iterfind("devices/device/files/file")]
    assert "manifest.sig" not in names  # never among a device's files
    pem, fingerprint = await published_key(client)
    key = signing.load_public_key(pem.encode())
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    assert fingerprint == hashlib.sha256(der).hexdigest()
    export_id = export.findtext("exportid")
    manifest = await download(client, export_id, "manifest.xml")
    signature = await download(client, export_id, "manifest.sig")
    assert len(signature) == 64 and signing.verify(key, manifest, signature)
    on_disk = export_dir(make_config(), export)
    assert (on_disk / "manifest.sig").read_bytes() == signature
    key_file = make_config().server.data_dir / signing.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_a_failed_export_is_signed_too(client: Any, api_archive: dict[str, Any]) -> None:
    export = await finished_export(client, api_archive, (GAPPY, 62, 64))
    assert export.findtext("status") == "FAILED"
    pem, _ = await published_key(client)
    manifest = await download(client, export.findtext("exportid"), "manifest.xml")
    signature = await download(client, export.findtext("exportid"), "manifest.sig")
    assert signing.verify(signing.load_public_key(pem.encode()), manifest, signature)


async def test_the_key_survives_a_restart(make_client: Any, make_config: Any) -> None:
    first = await published_key(await make_client(make_config()))
    again = await published_key(await make_client(make_config()))
    assert first == again


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
async def test_openssl_checks_a_downloaded_manifest(
        client: Any, api_archive: dict[str, Any], tmp_path: Path) -> None:
    export = await finished_export(client, api_archive, (STEADY, 1, 3))
    pem, _ = await published_key(client)
    (tmp_path / "key.pem").write_text(pem)
    manifest, sig = tmp_path / "manifest.xml", tmp_path / "manifest.sig"
    manifest.write_bytes(await download(client, export.findtext("exportid"), "manifest.xml"))
    sig.write_bytes(await download(client, export.findtext("exportid"), "manifest.sig"))
    check = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "key.pem"),
             "-rawin", "-in", str(manifest), "-sigfile", str(sig)]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0
    data = bytearray(manifest.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed
    manifest.write_bytes(bytes(data))
    assert subprocess.run(check, capture_output=True, check=False).returncode != 0


async def test_verify_with_key_good_bad_missing_and_wrong_type(
        client: Any, make_config: Any, api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    export = await finished_export(client, api_archive, (STEADY, 1, 3), path="v")
    directory = export_dir(make_config(), export)
    pem, _ = await published_key(client)
    key = tmp_path / "key.pem"
    key.write_text(pem)
    assert main(["verify", str(directory), "--key", str(key)]) == 0
    out = capsys.readouterr().out
    assert "SIGNATURE OK manifest.xml" in out and "verify: PASSED" in out
    assert main(["verify", str(directory)]) == 0
    assert "UNCHECKED manifest.sig" in capsys.readouterr().out
    other = tmp_path / "other.pem"
    other.write_text(signing.load_or_create(tmp_path / "other-private.pem").public_pem)
    assert main(["verify", str(directory), "--key", str(other)]) == 1
    assert "SIGNATURE BAD" in capsys.readouterr().out
    wrong = tmp_path / "ec.pem"
    wrong.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["verify", str(directory), "--key", str(wrong)]) == 1
    assert "not an Ed25519 key" in capsys.readouterr().out
    manifest = directory / "manifest.xml"
    manifest.write_bytes(manifest.read_bytes().replace(b"<path>v</path>", b"<path>w</path>"))
    assert main(["verify", str(directory), "--key", str(key)]) == 1
    assert "SIGNATURE BAD" in capsys.readouterr().out
    (directory / "manifest.sig").unlink()
    assert main(["verify", str(directory), "--key", str(key)]) == 1
    assert "MISSING manifest.sig" in capsys.readouterr().out


def test_a_configured_key_must_exist_and_be_ed25519(make_config: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[evidence\] signing_key.*cannot read"):
        make_config(evidence={"signing_key": str(tmp_path / "absent.pem")})
    wrong = tmp_path / "ec.pem"
    wrong.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        make_config(evidence={"signing_key": str(wrong)})
    own = tmp_path / "own.pem"
    signing.load_or_create(own)
    assert make_config(evidence={"signing_key": str(own)}).evidence.signing_key == own


async def test_a_configured_key_signs(make_client: Any, make_config: Any,
                                      tmp_path: Path) -> None:
    own = signing.load_or_create(tmp_path / "own.pem")
    client = await make_client(make_config(evidence={"signing_key": str(tmp_path / "own.pem")}))
    assert await published_key(client) == (own.public_pem, own.fingerprint)
