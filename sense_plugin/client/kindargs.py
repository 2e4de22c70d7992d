"""Command-line options of the export kinds (argparse only: imported when the CLI starts)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def add_export_kind_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--live", action="store_true",
                        help="follow the recording (--to may be omitted or in the future)")
    parser.add_argument("--stop", type=int, metavar="N",
                        help="stop export N now, keeping what it wrote (no other options)")
    parser.add_argument("--max-file-size", type=int, metavar="MB",
                        help="split into parts of at most MB megabytes (10^6 bytes)")
    parser.add_argument("--no-audio", action="store_true", help="video only")


ClientArgs = Callable[[argparse.ArgumentParser], None]


def add_snapshot_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                        client_args: ClientArgs) -> argparse.ArgumentParser:
    snap = sub.add_parser("snapshot", help="save the frame shown at an instant (HTTP client)")
    client_args(snap)
    snap.add_argument("--device", action="append", required=True, metavar="ID|NAME",
                      help="device id or name (repeat for several devices)")
    snap.add_argument("--at", metavar="T", help="instant as --from of export (default: "
                      "the newest frame)")
    snap.add_argument("--format", choices=("jpg", "png"), help="image format (default jpg)")
    snap.add_argument("--path", help="export path on the server")
    snap.add_argument("--out", type=Path, default=Path("."), help="download directory")
    return snap
