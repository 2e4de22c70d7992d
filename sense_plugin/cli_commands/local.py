"""The commands that run on this machine: serve, db upgrade, demo-archive, archive-check,
hash-password, verify. Heavy imports stay inside each command (``--help`` stays fast)."""

from __future__ import annotations

import argparse
import getpass
import logging
import ssl
import sys

from sense_plugin.config import Config, default_config_path, load_config
from sense_plugin.errors import ConfigError

log = logging.getLogger("sense_plugin")


def load(args: argparse.Namespace, **overrides: object) -> Config:
    path = args.config or default_config_path()
    data_dir = str(args.data_dir.resolve()) if args.data_dir else None
    return load_config(path, overrides={"server.data_dir": data_dir, **overrides})


def cmd_serve(args: argparse.Namespace) -> int:
    from sense_plugin.api.app import create_app
    from sense_plugin.api.serving import BindError, run_server
    from sense_plugin.startup import base_url, keep_data_private, startup_lines

    config = load(args, **{"http.host": args.host, "http.port": args.port})
    keep_data_private(config)
    ssl_context = None
    if config.http.tls_cert and config.http.tls_key:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.http.tls_cert, config.http.tls_key)
    for line in startup_lines(config):
        log.info("%s", line)
    url = base_url(config)
    try:
        run_server(create_app(config), config.http, ssl_context,
                   on_ready=lambda: log.info("ready: web page %sweb/, commands %scommand",
                                             url, url))
    except BindError as exc:
        print(f"sense-plugin: {exc}", file=sys.stderr)
        return 2
    log.info("stopped")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sense_plugin.cluster.upgrade import upgrade_database

    config = load(args)
    if config.cluster is None:
        raise ConfigError(f"{config.source}: [cluster]: missing (db upgrade needs database_url)")
    print(upgrade_database(config.cluster.database_url))
    return 0


def cmd_demo_archive(args: argparse.Namespace) -> int:
    from sense_plugin.archive.demo_archive import build_demo_archive
    from sense_plugin.startup import keep_data_private

    config = load(args)
    keep_data_private(config)  # the recordings and the index, like serve's
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"sense-plugin: --size must be WxH, got {args.size!r}", file=sys.stderr)
        return 2
    build_demo_archive(config, devices=args.devices, minutes=args.minutes, width=width,
                       height=height, fps=args.fps, bitrate_bps=args.bitrate,
                       segment_s=args.segment_seconds, gop_s=args.gop_seconds)
    return 0


def cmd_archive_check(args: argparse.Namespace) -> int:
    """Print the archive of each device; 1 when any file is skipped, 2 for an unknown device."""
    import sqlite3

    from sense_plugin.archive.check import check_archive
    from sense_plugin.errors import NoDeviceError

    config = load(args)
    try:
        checks = check_archive(config, args.device)
    except NoDeviceError as exc:
        print(f"sense-plugin: {exc.description}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"sense-plugin: cannot use the archive index: {exc}", file=sys.stderr)
        return 2
    for check in checks:
        for line in check.lines():
            print(line)
    skipped = sum(check.skipped_total for check in checks)
    print(f"archive-check: {'FAILED' if skipped else 'PASSED'} ({skipped} files skipped)")
    return 1 if skipped else 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from sense_plugin.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("sense-plugin: passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("sense-plugin: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Print which export the manifest describes, one line per file (OK, MISMATCH, MISSING,
    EXTRA, SYMLINK) and one about the signature; 1 when anything is wrong (a missing
    signature without ``--unsigned`` and a key that cannot be used included)."""
    from sense_plugin.export.verify import verify_directory
    from sense_plugin.signing import SigningKeyError, load_public_key

    key = None
    if args.key is not None:
        try:
            key = load_public_key(args.key.read_bytes())
        except OSError as exc:
            print(f"ERROR cannot read the key {args.key}: {exc.strerror}")
            print("verify: FAILED (no usable key)")
            return 1
        except SigningKeyError as exc:
            print(f"ERROR {args.key}: {exc}")
            print("verify: FAILED (no usable key)")
            return 1
    report = verify_directory(args.directory, key, unsigned=args.unsigned)
    for line in report.lines():
        print(line)
    ok = report.ok
    if args.audit is not None:
        from sense_plugin.cli_commands.audit import verify_audit

        ok = verify_audit(args.directory, args.audit) and ok
    print(f"verify: {'PASSED' if ok else 'FAILED'} ({len(report.checked)} files listed)")
    return 0 if ok else 1
