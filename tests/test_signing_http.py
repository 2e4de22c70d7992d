"""Signed manifests over HTTP: manifest.sig beside every manifest, the key in getServerOptions,
openssl and ``sense-plugin verify --key`` accept the download and refuse one changed byte."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sense_plugin.api.app import create_app
from sense_plugin.cli import main
from sense_plugin.errors import ConfigError
from sense_plugin.evidence import signing
from sense_plugin.timestamps import format_timestamp

STEADY, OFF_RANGE = API_DEVICES["Steady"], API_DEVICES["Gappy"]


async def finished(client: Any, archive: dict[str, Any],
                   *devices: tuple[int, float, float]) -> Any:
    base = archive["start_us"]
    items = [(d, format_timestamp(base + int(a * 1e6)), format_timestamp(base + int(b * 1e6)))
             for d, a, b in devices]
    root = await command(client, "exportVideo", body=export_body(items, path="signed"))
    return await wait_export(client, int(root.findtext("exportid")))


async def download(client: Any, export_id: str, name: str) -> bytes:
    response = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export_id, "file": name})
    assert response.status == 200, await response.text()
    data: bytes = await response.read()
    return data


def openssl_verify(key: Path, manifest: Path, sig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
         "-in", str(manifest), "-sigfile", str(sig)], capture_output=True, text=True, check=False)


async def test_downloaded_manifest_verifies_with_openssl_and_cli(
        client: Any, make_config: Any, api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    options = (await command(client, "getServerOptions")).find("serveroptions")
    pem, fingerprint = options.findtext("signingkey"), options.findtext("signingkeyfingerprint")
    key_file = make_config().server.data_dir / signing.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    server_key = signing.load_or_create(key_file, create=False)
    assert pem == server_key.public_pem and fingerprint == server_key.fingerprint

    export = await finished(client, api_archive, (STEADY, 5, 8))
    assert export.find("manifest").findtext("signature") == "manifest.sig"
    assert export.find("devices/device/files").findtext("file/name") != "manifest.sig"
    export_id = export.findtext("exportid")
    out = tmp_path / "download"
    out.mkdir()
    (tmp_path / "key.pem").write_text(pem)
    for name in ("manifest.xml", "manifest.sig",
                 export.findtext("devices/device/files/file/name")):
        (out / name).write_bytes(await download(client, export_id, name))
    assert len((out / "manifest.sig").read_bytes()) == 64

    assert main(["verify", str(out), "--key", str(tmp_path / "key.pem")]) == 0
    assert f"SIGNATURE OK manifest.sig (key {fingerprint})" in capsys.readouterr().out
    if shutil.which("openssl") is None:
        pytest.skip("openssl command line not installed (apt-get install openssl)")
    good = openssl_verify(tmp_path / "key.pem", out / "manifest.xml", out / "manifest.sig")
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout

    data = bytearray((out / "manifest.xml").read_bytes())
    data[data.index(b"<exportid>") + 10] ^= 0x01  # one byte of the export id
    (out / "manifest.xml").write_bytes(bytes(data))
    bad = openssl_verify(tmp_path / "key.pem", out / "manifest.xml", out / "manifest.sig")
    assert bad.returncode != 0
    assert main(["verify", str(out), "--key", str(tmp_path / "key.pem")]) == 1
    assert "BAD SIGNATURE manifest.sig does not verify manifest.xml" in capsys.readouterr().out


async def test_failed_export_is_signed_and_verify_refuses_missing_sig_and_wrong_key(
        client: Any, make_config: Any, api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    export = await finished(client, api_archive, (STEADY, 1, 3), (OFF_RANGE, 62, 64))
    assert export.findtext("status") == "FAILED"
    config = make_config()
    directory = config.server.export_roots[0] / "signed" / export.findtext("exportid")
    key = config.server.data_dir / signing.KEY_FILE
    signer = signing.load_or_create(key, create=False)
    assert signing.verify(signer.public_key, (directory / "manifest.xml").read_bytes(),
                          (directory / "manifest.sig").read_bytes())
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["verify", str(directory), "--key", str(ec_key)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an Ed25519 key" in err[0]
    (directory / "manifest.sig").unlink()
    assert main(["verify", str(directory), "--key", str(key)]) == 1
    out = capsys.readouterr().out
    assert "BAD SIGNATURE manifest.sig is missing: the manifest is not signed" in out


async def test_configured_key_used_and_a_bad_one_stops_the_start(
        make_client: Any, make_config: Any, tmp_path: Path) -> None:
    own = tmp_path / "own.pem"
    signer = signing.load_or_create(own)
    client = await make_client(make_config(evidence={"signing_key": str(own)}))
    options = (await command(client, "getServerOptions")).find("serveroptions")
    assert options.findtext("signingkeyfingerprint") == signer.fingerprint
    assert not (make_config().server.data_dir / signing.KEY_FILE).exists()
    await client.close()

    with pytest.raises(ConfigError, match=r"\[evidence\] signing_key: expected a non-empty path"):
        make_config(evidence={"signing_key": 5})
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    for path, problem in ((tmp_path / "absent.pem", "cannot read the signing key"),
                          (wrong, "not an Ed25519 key")):
        app = create_app(make_config(evidence={"signing_key": str(path)}))
        with pytest.raises(ConfigError, match=problem) as caught:
            async with TestServer(app):
                pass
        assert str(path) in str(caught.value)
