"""Command line (SPEC §9): the only place that parses argv and sets up logging."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sense_plugin import __version__
from sense_plugin.archive import demo_defaults
from sense_plugin.config import Config, default_config_path, load_config
from sense_plugin.errors import ConfigError

if TYPE_CHECKING:
    from sense_plugin.client.http import SenseClient

log = logging.getLogger("sense_plugin")
DEFAULT_SERVER = "http://127.0.0.1:8080"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sense-plugin`` command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except ConfigError as exc:
        print(f"sense-plugin: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly; Python would report the failed
        # flush of stdout at exit, so point stdout at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # Ctrl-C while a client command follows an export
        print(file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sense-plugin", description="Video export server for the VDG Sense HTTP/XML API.")
    parser.add_argument("--version", action="version", version=f"sense-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    from sense_plugin.client.kindargs import add_export_kind_args, add_snapshot_parser

    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP server")
    _config_args(serve)
    serve.add_argument("--host", help="bind address (overrides [http] host)")
    serve.add_argument("--port", type=int, help="port (overrides [http] port)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo-archive", help="generate a synthetic archive")
    _config_args(demo)
    demo.add_argument("--devices", type=int, help="how many configured devices (default all)")
    demo.add_argument("--minutes", type=float, default=demo_defaults.MINUTES)
    demo.add_argument("--size", default=demo_defaults.size_text(), help="WxH")
    demo.add_argument("--fps", type=int, default=demo_defaults.FPS)
    demo.add_argument("--bitrate", type=int, default=demo_defaults.ARCHIVE_BITRATE_BPS,
                      help="bits per second")
    demo.add_argument("--segment-seconds", type=float,
                      default=demo_defaults.ARCHIVE_SEGMENT_S)
    demo.add_argument("--gop-seconds", type=float, default=demo_defaults.GOP_S)
    demo.set_defaults(func=cmd_demo_archive)

    check = sub.add_parser("archive-check",
                           help="list per device the indexed segments and every skipped file")
    _config_args(check)
    check.add_argument("--device", type=int, metavar="ID", help="one device (default all)")
    check.set_defaults(func=cmd_archive_check)

    db = sub.add_parser("db", help="the site database of [cluster] (PostgreSQL)")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="create or upgrade the schema (idempotent)")
    _config_args(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)

    hash_pw = sub.add_parser("hash-password", help="print a password hash for the config")
    hash_pw.set_defaults(func=cmd_hash_password)

    verify = sub.add_parser("verify", help="re-check an export directory against its manifest")
    verify.add_argument("directory", type=Path, metavar="EXPORT_DIR")
    verify.add_argument("--key", type=Path, metavar="PEM",
                        help="the server's public signing key (getServerOptions <signingkey>): "
                             "also check manifest.sig")
    verify.set_defaults(func=cmd_verify)

    export = sub.add_parser("export", help="create an export on a server (HTTP client)")
    _client_args(export)
    export.add_argument("--device", action="append", metavar="ID|NAME",
                        help="device id or name (repeat for several devices)")
    export.add_argument("--from", dest="start", metavar="T",
                        help="UTC 'YYYY-MM-DD HH:MM:SS', 'now', or 'now-10m', 'now-90s', 'now-1h'")
    export.add_argument("--to", dest="end", metavar="T", help="as --from (--live: optional)")
    export.add_argument("--path", help="export path on the server")
    export.add_argument("--format", choices=("mp4", "mkv", "ts"))
    add_export_kind_args(export)
    export.add_argument("--name", help="a label for the export")
    export.add_argument("--bandwidth", type=int, metavar="KBPS", help="write rate cap")
    export.add_argument("--wait", action="store_true",
                        help="follow progress, then download the files and manifest")
    export.add_argument("--out", type=Path, default=Path("."), help="download directory")
    export.set_defaults(func=cmd_export)

    add_snapshot_parser(sub, _client_args).set_defaults(func=cmd_snapshot)

    status = sub.add_parser("status", help="show exports on a server (HTTP client)")
    _client_args(status)
    status.add_argument("--export", type=int, metavar="N", help="one export")
    status.add_argument("--watch", action="store_true", help="follow until finished")
    status.set_defaults(func=cmd_status)
    return parser


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        default=os.environ.get("SENSE_SERVER") or DEFAULT_SERVER,
                        help=f"server URL (default $SENSE_SERVER, else {DEFAULT_SERVER})")
    parser.add_argument("--user", help="user name (password from SENSE_PASSWORD or a prompt)")
    parser.add_argument("--interval", type=float, default=0.5, help="poll interval in seconds")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file (default: the shipped default)")
    parser.add_argument("--data-dir", type=Path, help="overrides [server] data_dir")


def _load(args: argparse.Namespace, **overrides: object) -> Config:
    path = args.config or default_config_path()
    data_dir = str(args.data_dir.resolve()) if args.data_dir else None
    return load_config(path, overrides={"server.data_dir": data_dir, **overrides})


def cmd_serve(args: argparse.Namespace) -> int:
    from sense_plugin.api.app import create_app
    from sense_plugin.api.serving import BindError, run_server
    from sense_plugin.startup import base_url, startup_lines

    config = _load(args, **{"http.host": args.host, "http.port": args.port})
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

    config = _load(args)
    if config.cluster is None:
        raise ConfigError(f"{config.source}: [cluster]: missing (db upgrade needs database_url)")
    print(upgrade_database(config.cluster.database_url))
    return 0


def cmd_demo_archive(args: argparse.Namespace) -> int:
    from sense_plugin.archive.demo_archive import build_demo_archive

    config = _load(args)
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

    config = _load(args)
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
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("sense-plugin: empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Print one line per file (OK, MISMATCH, MISSING, EXTRA) and one about the signature;
    1 when anything is wrong (a key that cannot be used included)."""
    from sense_plugin.evidence.signing import SigningKeyError, load_public_key
    from sense_plugin.export.verify import verify_directory

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
    report = verify_directory(args.directory, key)
    for line in report.lines():
        print(line)
    print(f"verify: {'PASSED' if report.ok else 'FAILED'} ({len(report.checked)} files listed)")
    return 0 if report.ok else 1


def _client(args: argparse.Namespace) -> SenseClient:
    from sense_plugin.client.http import SenseClient

    password = None
    if args.user:
        prompt = f"Password for {args.user}: "
        password = os.environ.get("SENSE_PASSWORD") or getpass.getpass(prompt)
    return SenseClient(args.server, args.user, password)


def cmd_export(args: argparse.Namespace) -> int:
    from sense_plugin.client.http import ClientError
    from sense_plugin.client.kinds import run_stop
    from sense_plugin.client.run import ExportOptions, Kind, run_export

    if args.stop is None and not (args.device and args.start and (args.end or args.live)):
        print("sense-plugin: export needs --device and --from, and --to unless --live "
              "(or --stop N)", file=sys.stderr)
        return 2
    opts = ExportOptions(devices=tuple(args.device or ()), start=args.start or "",
                         end=args.end or "", path=args.path, fmt=args.format, name=args.name,
                         bandwidth_kbps=args.bandwidth, wait=args.wait, out_dir=args.out,
                         interval_s=args.interval,
                         kind=Kind(live=args.live, max_file_size_mb=args.max_file_size,
                                   audio=not args.no_audio))
    try:
        if args.stop is not None:
            return run_stop(_client(args), args.stop, sys.stdout)
        return run_export(_client(args), opts, sys.stdout)
    except ClientError as exc:
        print(f"sense-plugin: {exc}", file=sys.stderr)
        return 2


def cmd_snapshot(args: argparse.Namespace) -> int:
    from sense_plugin.client.http import ClientError
    from sense_plugin.client.kinds import run_snapshot

    try:
        return run_snapshot(_client(args), args.device, args.at, args.format, args.path,
                            args.out, args.interval, sys.stdout)
    except ClientError as exc:
        print(f"sense-plugin: {exc}", file=sys.stderr)
        return 2


def cmd_status(args: argparse.Namespace) -> int:
    from sense_plugin.client.http import ClientError
    from sense_plugin.client.run import run_status

    try:
        return run_status(_client(args), args.export, args.watch, args.interval, sys.stdout)
    except ClientError as exc:
        print(f"sense-plugin: {exc}", file=sys.stderr)
        return 2
