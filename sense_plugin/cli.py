"""Command line (SPEC §9): the only place that parses argv and sets up logging."""

from __future__ import annotations

import argparse
import getpass
import logging
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from sense_plugin import __version__
from sense_plugin.config import Config, default_config_path, load_config
from sense_plugin.errors import ConfigError

log = logging.getLogger("sense_plugin")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sense-plugin`` command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"sense-plugin: configuration error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sense-plugin", description="Video export server for the VDG Sense HTTP/XML API.")
    parser.add_argument("--version", action="version", version=f"sense-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP server")
    _config_args(serve)
    serve.add_argument("--host", help="bind address (overrides [http] host)")
    serve.add_argument("--port", type=int, help="port (overrides [http] port)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo-archive", help="generate a synthetic archive")
    _config_args(demo)
    demo.add_argument("--devices", type=int, help="how many configured devices (default all)")
    demo.add_argument("--minutes", type=float, default=10.0)
    demo.add_argument("--size", default="320x180", help="WxH")
    demo.add_argument("--fps", type=int, default=10)
    demo.add_argument("--bitrate", type=int, default=200_000, help="bits per second")
    demo.add_argument("--segment-seconds", type=float, default=30.0)
    demo.add_argument("--gop-seconds", type=float, default=1.0)
    demo.set_defaults(func=cmd_demo_archive)

    hash_pw = sub.add_parser("hash-password", help="print a password hash for the config")
    hash_pw.set_defaults(func=cmd_hash_password)

    verify = sub.add_parser("verify", help="re-check an export directory against its manifest")
    verify.add_argument("directory", type=Path, metavar="EXPORT_DIR")
    verify.set_defaults(func=cmd_verify)
    return parser


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file (default: the shipped default)")
    parser.add_argument("--data-dir", type=Path, help="overrides [server] data_dir")


def _load(args: argparse.Namespace, **overrides: object) -> Config:
    path = args.config or default_config_path()
    data_dir = str(args.data_dir.resolve()) if args.data_dir else None
    return load_config(path, overrides={"server.data_dir": data_dir, **overrides})


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from sense_plugin.api.app import create_app

    config = _load(args, **{"http.host": args.host, "http.port": args.port})
    ssl_context = None
    if config.http.tls_cert and config.http.tls_key:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.http.tls_cert, config.http.tls_key)
    log.info("sense_plugin %s serving %s on %s:%s (data in %s)", __version__, config.source,
             config.http.host, config.http.port, config.server.data_dir)
    web.run_app(create_app(config), host=config.http.host, port=config.http.port,
                ssl_context=ssl_context, access_log=None, print=None)
    log.info("stopped")
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
    """Print one line per file (OK, MISMATCH, MISSING, EXTRA); 1 when anything is wrong."""
    from sense_plugin.export.verify import verify_directory

    report = verify_directory(args.directory)
    for line in report.lines():
        print(line)
    print(f"verify: {'PASSED' if report.ok else 'FAILED'} ({len(report.checked)} files listed)")
    return 0 if report.ok else 1
