"""Command line: the only place that parses argv and sets up logging.

Every command, its options and the one exit-code rule they share: ``docs/cli.rst``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sense_plugin import __version__, demo_defaults
from sense_plugin.cli_commands import audit, local, remote
from sense_plugin.errors import ConfigError

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

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
        prog="sense-plugin", description="Video export server for the VDG Sense HTTP/XML API.",
        epilog="Exit codes: 0 done; 1 what was followed or checked did not complete or pass; "
               "2 nothing was done (the command line, a file, the configuration, or the "
               "server refused the request); 3 no answer from the server; 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"sense-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_server_commands(sub)
    _add_tool_commands(sub)
    _add_client_commands(sub)
    return parser


def _add_server_commands(sub: _Subparsers) -> None:
    """serve, demo-archive, archive-check, db upgrade: they read a configuration."""
    serve = sub.add_parser("serve", help="run the HTTP server")
    _config_args(serve)
    serve.add_argument("--host", help="bind address (overrides [http] host)")
    serve.add_argument("--port", type=int, help="port (overrides [http] port)")
    serve.set_defaults(func=local.cmd_serve)

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
    demo.set_defaults(func=local.cmd_demo_archive)

    check = sub.add_parser("archive-check",
                           help="list per device the indexed segments and every skipped file")
    _config_args(check)
    check.add_argument("--device", type=int, metavar="ID", help="one device (default all)")
    check.set_defaults(func=local.cmd_archive_check)

    db = sub.add_parser("db", help="the site database of [cluster] (PostgreSQL)")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="create or upgrade the schema (idempotent)")
    _config_args(upgrade)
    upgrade.set_defaults(func=local.cmd_db_upgrade)


def _add_tool_commands(sub: _Subparsers) -> None:
    """hash-password, verify: no configuration, no server."""
    hash_pw = sub.add_parser("hash-password", help="print a password hash for the config")
    hash_pw.set_defaults(func=local.cmd_hash_password)

    verify = sub.add_parser("verify", help="re-check an export directory against its manifest")
    verify.add_argument("directory", type=Path, metavar="EXPORT_DIR")
    verify.add_argument("--key", type=Path, metavar="PEM",
                        help="the server's public signing key (getServerOptions <signingkey>): "
                             "also check manifest.sig")
    verify.add_argument("--audit", type=Path, metavar="FILE",
                        help="a saved getAuditLog answer: check its chain holds this "
                             "export's records")
    verify.add_argument("--unsigned", action="store_true",
                        help="accept an export without manifest.sig (else that fails)")
    verify.set_defaults(func=local.cmd_verify)
    audit_verify = sub.add_parser("audit-verify",
                                  help="recompute the hash chain of a saved getAuditLog answer")
    audit_verify.add_argument("file", type=Path, metavar="FILE")
    audit_verify.set_defaults(func=audit.cmd_audit_verify)


def _add_client_commands(sub: _Subparsers) -> None:
    """export, snapshot, status, stop, remove: HTTP clients of a running server."""
    from sense_plugin.client.kindargs import add_export_kind_args, add_snapshot_parser

    export = sub.add_parser(
        "export", help="create an export on a server (HTTP client)",
        description="Create an export of one or more cameras' recordings on a running server. "
                    "With --wait, follow its progress and download its files, manifest and "
                    "signature; Ctrl-C then stops following, not the export.")
    _client_args(export)
    export.add_argument("--device", action="append", metavar="ID|NAME",
                        help="device id or name (repeat for several devices)")
    export.add_argument("--from", dest="start", metavar="T",
                        help="UTC 'YYYY-MM-DD HH:MM:SS', 'now', or 'now-10m', 'now-90s', 'now-1h'")
    export.add_argument("--to", dest="end", metavar="T", help="as --from (--live: optional)")
    export.add_argument("--path", help="folder on the server the export is written to")
    export.add_argument("--format", choices=("mp4", "mkv", "ts"),
                        help="container of the video files (default mp4)")
    add_export_kind_args(export)
    export.add_argument("--name", help="a label for the export")
    export.add_argument("--bandwidth", type=int, metavar="KBPS",
                        help="write rate cap in kbit/s (default: none)")
    export.add_argument("--wait", action="store_true",
                        help="follow progress, then download the files and manifest")
    export.add_argument("--out", type=Path, default=Path("."),
                        help="download directory for --wait (default: the current one)")
    export.set_defaults(func=remote.cmd_export)

    for name, verb, func in (("stop", "stop an export now, keeping what it wrote",
                              remote.cmd_stop),
                             ("remove", "cancel an export, or delete a finished one's files",
                              remote.cmd_remove)):
        action = sub.add_parser(name, help=f"{verb} (HTTP client)", description=verb[0].upper()
                                + verb[1:] + ".")
        _client_args(action)
        action.add_argument("export_id", type=int, metavar="ID", help="the export's id")
        action.set_defaults(func=func)

    add_snapshot_parser(sub, _client_args).set_defaults(func=remote.cmd_snapshot)

    status = sub.add_parser("status", help="show exports on a server (HTTP client)")
    _client_args(status)
    status.add_argument("--export", type=int, metavar="N", help="one export")
    status.add_argument("--watch", action="store_true",
                        help="follow until finished; exit 1 when one did not complete")
    status.set_defaults(func=remote.cmd_status)


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        default=os.environ.get("SENSE_SERVER") or DEFAULT_SERVER,
                        help=f"server URL (default $SENSE_SERVER, else {DEFAULT_SERVER})")
    parser.add_argument("--user", default=os.environ.get("SENSE_USER") or None,
                        help="user name (default $SENSE_USER; password from $SENSE_PASSWORD "
                             "or a prompt)")
    parser.add_argument("--interval", type=float, default=0.5, help="poll interval in seconds")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file (default: the shipped default)")
    parser.add_argument("--data-dir", type=Path, help="overrides [server] data_dir")
