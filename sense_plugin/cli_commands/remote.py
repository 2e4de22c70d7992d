"""The commands that talk to a server over HTTP: export, snapshot, status."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sense_plugin.client.http import SenseClient


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
