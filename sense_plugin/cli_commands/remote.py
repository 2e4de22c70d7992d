"""The commands that talk to a server over HTTP: export, snapshot, status, stop, remove.

Every one ends with the same exit codes (``docs/cli.rst``): 0 done, 1 what was followed did
not complete, 2 nothing was done (the command line, or the server refused the request, whose
description names what was typed), 3 no answer from the server, 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sense_plugin.client.http import SenseClient

#: The exit codes of every command (``docs/cli.rst``).
EXIT_DONE, EXIT_NOT_COMPLETED, EXIT_NOT_DONE, EXIT_NO_ANSWER, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _client(args: argparse.Namespace) -> SenseClient:
    from sense_plugin.client.http import SenseClient

    password = None
    if args.user:
        prompt = f"Password for {args.user}: "
        password = os.environ.get("SENSE_PASSWORD") or getpass.getpass(prompt)
    return SenseClient(args.server, args.user, password)


def _run(work: Callable[[SenseClient], int], args: argparse.Namespace) -> int:
    """Run ``work`` with a client; a refusal or no answer becomes its exit code."""
    from sense_plugin.client.http import ClientError, UnreachableError

    try:
        return work(_client(args))
    except UnreachableError as exc:
        print(f"sense-plugin: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    except ClientError as exc:
        print(f"sense-plugin: {exc}", file=sys.stderr)
        return EXIT_NOT_DONE


def cmd_export(args: argparse.Namespace) -> int:
    from sense_plugin.client.kinds import run_action
    from sense_plugin.client.run import ExportOptions, Kind, run_export

    if args.stop is None and not (args.device and args.start and (args.end or args.live)):
        print("sense-plugin: export needs --device and --from, and --to unless --live "
              "(or --stop N)", file=sys.stderr)
        return EXIT_NOT_DONE
    opts = ExportOptions(devices=tuple(args.device or ()), start=args.start or "",
                         end=args.end or "", path=args.path, fmt=args.format, name=args.name,
                         bandwidth_kbps=args.bandwidth, wait=args.wait, out_dir=args.out,
                         interval_s=args.interval,
                         kind=Kind(live=args.live, max_file_size_mb=args.max_file_size,
                                   audio=not args.no_audio))
    if args.stop is not None:
        return _run(lambda c: run_action(c, "stop", args.stop, sys.stdout), args)
    return _run(lambda c: run_export(c, opts, sys.stdout), args)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from sense_plugin.client.kinds import run_snapshot

    return _run(lambda c: run_snapshot(c, args.device, args.at, args.format, args.path,
                                       args.out, args.interval, sys.stdout), args)


def cmd_status(args: argparse.Namespace) -> int:
    from sense_plugin.client.run import run_status

    return _run(lambda c: run_status(c, args.export, args.watch, args.interval, sys.stdout),
                args)


def cmd_stop(args: argparse.Namespace) -> int:
    from sense_plugin.client.kinds import run_action

    return _run(lambda c: run_action(c, "stop", args.export_id, sys.stdout), args)


def cmd_remove(args: argparse.Namespace) -> int:
    from sense_plugin.client.kinds import run_action

    return _run(lambda c: run_action(c, "remove", args.export_id, sys.stdout), args)
