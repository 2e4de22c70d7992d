"""Shared pytest fixtures; each section belongs to the module family named in its header."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sense_plugin import naming
from sense_plugin.archive import demo

#: Before pytest-timeout's limit (pyproject.toml): a test still running then prints its tasks.
HANG_DUMP_S = 100


@pytest.fixture(autouse=True)
def _print_tasks_of_a_hanging_test() -> Iterator[None]:
    """pytest-timeout prints the threads; what hangs in asyncio is a task, so print those too."""
    timer = threading.Timer(HANG_DUMP_S, _print_tasks)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


#: Test modules by the real service they start (their tests carry that marker too).
BROWSER_MODULES = {"test_web_browser", "test_web_playback", "test_mp4_chromium",
                   "test_subtitles_chromium"}
SITE_PREFIXES = ("test_cluster_", "test_pg_")
#: The ``slow`` tests: more than about ten seconds each in one process on the 2-core
#: development machine (``--durations`` of a whole run), as ``module::test`` (every case of a
#: parametrised test) or a whole ``module``. ``-m "not slow"`` is the quick loop.
SLOW_TESTS = frozenset({
    "test_bundle_layout::test_a_member_past_4_gib_in_a_sparse_file",
    "test_cameras::test_export_across_a_resolution_change",
    "test_cameras::test_fast_source_clock_is_stamped_by_arrival",
    "test_cameras::test_resolution_change_starts_a_segment",
    "test_cluster_db::test_db_upgrade_errors_are_clear",
    "test_cluster_db::test_serve_without_its_database_exits_2",
    "test_cluster_exports::test_a_server_killed_mid_export_runs_its_job_again_when_it_is_back",
    "test_cluster_exports::test_keepalive_counts_the_requests_of_every_server",
    "test_cluster_exports::test_the_database_away_is_a_coded_error_and_a_restart_loses_nothing",
    "test_cluster_queue::test_job_runs_on_the_owning_server_and_survives_kills",
    "test_export_live::test_live_export_follows_the_recording_until_stopped",
    "test_export_to_now::test_a_camera_that_stops_delivering_leaves_a_trailing_gap_that_says_why",
    "test_exports_api::test_progress_is_monotonic_and_cap_holds",
    "test_hardening_load::test_status_polling_under_load_loses_nothing",
    "test_integrity::test_a_temporary_file_swapped_mid_write_is_never_reported_completed",
    "test_live_demo::test_interrupted_backfill_is_completed_by_the_next_start",
    "test_live_demo::test_live_demo_without_devices",
    "test_live_truth::test_fresh_start_recording_join_and_export_to_now",
    "test_manifest_size::test_a_store_is_rebuilt_from_the_largest_manifests",
    "test_readme::test_readme_walkthrough_runs_as_printed",
    "test_recorder_opengop::test_open_gop_segments_are_named_after_their_keyframe",
    "test_rtsp::test_rtsp_cameras_record_and_export",
    "test_rtsp_truth::test_recordings_and_exports_of_bframe_and_open_gop_cameras",
    "test_scheduling::test_another_users_short_copy_is_not_queued_behind_long_renders",
    "test_scheduling::test_live_exports_of_one_user_leave_a_worker_for_another",
    "test_server_process::test_sigkill_mid_export_then_restart_completes",
    "test_web_browser::test_timeline_preview_export_downloads_cancel_delete",
})
#: pytest-xdist workers per core for ``-n auto``.
WORKERS_PER_CORE = 2


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by where a test lives: ``tests/unit/`` is ``unit``, everything else
    ``integration``, plus ``browser`` or ``site`` for the modules that start Chromium or
    PostgreSQL (``pytest -m unit`` runs in seconds; ``-m "not browser"`` skips Chromium).

    Under pytest-xdist (``--dist loadgroup``) the tests of a module that share a fixture wider
    than a test (a site of servers, a PostgreSQL) form one group and run on one worker, so that
    fixture is built once, not once per worker (see docs/testing.rst)."""
    for item in items:
        module = item.path.stem
        if _shares_a_wide_fixture(item):
            item.add_marker(pytest.mark.xdist_group(module))
        name = getattr(item, "originalname", item.name)
        if module in SLOW_TESTS or f"{module}::{name}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if "unit" in item.path.parent.parts[-1:]:
            item.add_marker(pytest.mark.unit)
            continue
        item.add_marker(pytest.mark.integration)
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
        if module.startswith(SITE_PREFIXES):
            item.add_marker(pytest.mark.site)


def _shares_a_wide_fixture(item: pytest.Item) -> bool:
    """True when the test uses a module- or class-scoped fixture, or a session-scoped one that
    a test module defines for itself (the media corpus); this file's session fixtures are
    small archives every worker makes for itself."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for definitions in info.name2fixturedefs.values():
        scope = definitions[-1].scope if definitions else "function"
        module = getattr(definitions[-1].func, "__module__", "") if definitions else ""
        if scope in ("module", "class", "package") or \
                (scope == "session" and module.startswith("test_")):
            return True
    return False


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Without pytest-xdist (``-p no:xdist``, or not installed) its options in pyproject's
    addopts are accepted and mean nothing: the tests run in this process."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist", "in-process stand-ins for pytest-xdist's options")
        group.addoption("--numprocesses", help="ignored: pytest-xdist is not loaded")
        group.addoption("--dist", help="ignored: pytest-xdist is not loaded")


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: `-p no:xdist` works too
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``--numprocesses auto`` (in pyproject's addopts): two workers per core, as most tests
    wait on servers, worker processes and the clock rather than compute (measured in
    docs/testing.rst); none for a narrow run (single tests named as ``file::name``, or only
    the unit tests), where starting workers would cost more than it saves.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` or ``-n N`` overrides it."""
    if chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(chosen)
    if config.option.markexpr == "unit" or (config.args and all(
            "::" in arg or "unit" in Path(arg).parts for arg in config.args)):
        return 0
    return max(2, WORKERS_PER_CORE * (os.cpu_count() or 1))


def _print_tasks() -> None:
    print(f"\n+++ asyncio tasks after {HANG_DUMP_S} s +++", file=sys.stderr)
    for task in list(asyncio.tasks._all_tasks):
        if not task.done():
            print(f"--- {task!r}", file=sys.stderr)
            task.print_stack(file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Process guard: no test leaves a process of the run behind (a forkserver and its export
# workers, a server, a recorder source). Every process of this run carries RUN_MARK in its
# environment (inherited from here), so one adopted by init is found too. Under pytest-xdist
# each worker appends its name to the mark it inherited, so its guard counts only the processes
# its own tests started, never those of the workers running beside it.
# ---------------------------------------------------------------------------------------------

RUN_MARK = "SENSE_TEST_RUN"
os.environ.setdefault(RUN_MARK, f"{os.getpid()}-{time.time_ns()}")
if (_worker := os.environ.get("PYTEST_XDIST_WORKER")) and \
        not os.environ[RUN_MARK].endswith(f"-{_worker}"):
    os.environ[RUN_MARK] += f"-{_worker}"
#: How long processes of a test may take to exit once it has ended.
EXIT_GRACE_S = 10.0


def run_processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every live process of this run but this one."""
    mark = f"{RUN_MARK}={os.environ[RUN_MARK]}".encode()
    found: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as env:
                if mark not in env.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry.name}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmd:
                line = cmd.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile
        if fields[0] not in ("Z", "X"):  # an exited child not yet reaped is gone
            found[int(entry.name)] = (int(fields[1]), line)
    return found


def kind_of(pid: int, processes: dict[int, tuple[int, str]]) -> str | None:
    """What a process of the run is, for the guard; None for the ones it does not police:
    this process's own resource tracker and idle forkserver (multiprocessing keeps them for
    the whole session, and they end with it), and helpers of wider fixtures such as
    PostgreSQL or a browser (a test may restart them)."""
    parent, line = processes[pid]
    if "resource_tracker" in line or _own_idle_forkserver(pid, processes):
        return None
    if "forkserver" in line:
        return "worker" if "forkserver" in processes.get(parent, (0, ""))[1] \
            else "forkserver"
    if "sense_plugin" in line or "sense-plugin" in line:
        return "server"
    if any(word in line for word in ("ffmpeg", "gst", "rtsp", "livesource", "synthetic")):
        return "recorder source"
    return None


@pytest.fixture(autouse=True)
def _no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that leaves a process of the run alive (found in /proc); the leftovers
    are then killed so the next test starts clean."""
    before = set(run_processes())
    wider = _server_objects()  # servers of fixtures wider than this test
    yield
    deadline = time.monotonic() + EXIT_GRACE_S
    while True:
        now = run_processes()
        owned = _process_trees([s.proc.pid for s in wider
                                if s.proc is not None and s.proc.poll() is None], now)
        left = {pid: kind for pid in set(now) - before - owned
                if (kind := kind_of(pid, now)) is not None}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        for pid in left:  # this process's own forkserver ends once its children have
            if not _own_idle_forkserver(pid, {pid: (0, "")}):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        pytest.fail(f"{request.node.nodeid} left processes alive: " + "; ".join(
            f"{kind} {pid} (parent {now[pid][0]}: {now[pid][1][:100]})"
            for pid, kind in sorted(left.items())),
            pytrace=False)


def _server_objects() -> list[Any]:
    """Every ServerProcess alive (its module is imported under two names by the tests)."""
    modules = [sys.modules.get(name) for name in ("sense_plugin.testing.serverprocess",)]
    return [server for module in modules if module is not None
            for server in module.ServerProcess.instances]


def _process_trees(roots: list[int], processes: dict[int, tuple[int, str]]) -> set[int]:
    """``roots`` and every process of the run below them."""
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += [child for child, (parent, _) in processes.items()
                 if parent == pid and child not in found]
    return found


def _own_idle_forkserver(pid: int, processes: dict[int, tuple[int, str]]) -> bool:
    """True for the forkserver this process started when nothing it forked still runs."""
    from multiprocessing import forkserver

    own = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    return pid == own and not any(parent == pid for parent, _ in processes.values())


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Name every process of the run still alive at the end (the guard's last word)."""
    left = run_processes()
    policed = {pid: line for pid, (_, line) in left.items() if kind_of(pid, left) is not None}
    if policed:
        print("\n+++ processes of this test run still alive: " + "; ".join(
            f"{pid} ({line[:120]})" for pid, line in sorted(policed.items())), file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Media fixtures: tiny synthetic archives made with sense_plugin.archive.demo (real H.264).
# ---------------------------------------------------------------------------------------------

#: 2026-11-20 10:00:00 UTC, the start of every synthetic test archive.
MEDIA_T0_US = 1_795_168_800_000_000

#: Small and fast: 64x64 at 10 fps with a keyframe every second.
MEDIA_DEFAULTS: dict[str, Any] = {"width": 64, "height": 64, "fps": 10, "gop_frames": 10,
                                  "bitrate_bps": 100_000}

MakeSegments = Callable[..., list[Path]]


@pytest.fixture(scope="session")
def make_segments(tmp_path_factory: pytest.TempPathFactory) -> MakeSegments:
    """Factory: ``make_segments(start_us=..., end_us=..., segment_s=..., **demo options)``.

    Writes one device's consecutive segments with :func:`demo.generate_device` (defaults from
    ``MEDIA_DEFAULTS``, start ``MEDIA_T0_US``) into a fresh directory and returns their paths in
    time order. Identical calls share one archive for the whole session, so treat it read-only.
    """
    cache: dict[tuple[tuple[str, Any], ...], list[Path]] = {}

    def make(**options: Any) -> list[Path]:
        settings = {"name": "CAM", "start_us": MEDIA_T0_US, "segment_s": 2.0, **MEDIA_DEFAULTS,
                    **options}
        settings.setdefault("end_us", settings["start_us"] + 6_000_000)
        key = tuple(sorted(settings.items()))
        if key not in cache:
            directory = tmp_path_factory.mktemp("segments")
            cache[key] = demo.generate_device(directory, **settings)
        return cache[key]

    return make


# ---------------------------------------------------------------------------------------------
# Archive fixtures (index, probe, scan, recorder, retention, service): per-test, mutable.
# ---------------------------------------------------------------------------------------------

#: Device ids above 2**63 on purpose: SQLite integers are signed 64-bit.
ARCHIVE_DEVICE_IDS = (9890179877273119875, 9890179877273119876, 9890179877273119877)

WriteSegment = Callable[..., Path]


@pytest.fixture
def write_segment(tmp_path: Path) -> WriteSegment:
    """Factory: ``write_segment(directory, start_us, duration_s=2.0, fmt="mp4", **demo options)``.

    Writes one tiny real H.264 segment named after its archive start (64x64, 10 fps, keyframe
    every 0.5 s) and returns its path.
    """

    def write(directory: Path, start_us: int, duration_s: float = 2.0, fmt: str = "mp4",
              **options: Any) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / naming.segment_filename(start_us, fmt)
        settings = {**MEDIA_DEFAULTS, "gop_frames": 5, "label": "TEST", **options}
        demo.write_segment(path, start_us=start_us, duration_s=duration_s, fmt=fmt, **settings)
        return path

    return write


@pytest.fixture
def archive_config(tmp_path: Path) -> Callable[..., Any]:
    """Factory: a validated :class:`Config` whose data directory is under ``tmp_path``.

    ``archive_config(devices=[{"name": ..., "source": ...}, ...], **archive_keys)``; device ids
    are taken from ``ARCHIVE_DEVICE_IDS`` unless given.
    """
    from sense_plugin.config import config_from_dict

    def make(devices: list[dict[str, Any]] | None = None, **archive: Any) -> Any:
        items = devices if devices is not None else [{"name": "Entrance"}]
        table = [{"deviceid": str(ARCHIVE_DEVICE_IDS[i]), **item} for i, item in enumerate(items)]
        data = {"server": {"serverid": "7015498111931795223", "data_dir": "data"},
                "archive": {"demo": False, **archive}, "devices": table}
        return config_from_dict(data, base_dir=tmp_path)

    return make


# ---------------------------------------------------------------------------------------------
# API fixtures: a real app over a small prebuilt archive of three devices (plus a disabled one).
# ---------------------------------------------------------------------------------------------

#: Ids and names of the API test devices; Gappy has a 20 s hole in the middle, Matroska is MKV.
API_DEVICES = {"Steady": 9890179877273119875, "Gappy": 9890179877273119876,
               "Matroska": 9890179877273119877, "Off": 9890179877273119878}
API_SERVER_ID = 7015498111931795223


@pytest.fixture(scope="session")
def api_archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Recorded minute per device ending five minutes ago; returns dirs and the time span."""
    import time

    end_us = (int(time.time()) - 300) * 1_000_000
    start_us = end_us - 60_000_000
    root = tmp_path_factory.mktemp("api-archive")
    opts = {**MEDIA_DEFAULTS, "segment_s": 10.0}
    dirs = {name: root / name for name in API_DEVICES}
    demo.generate_device(dirs["Steady"], name="Steady", start_us=start_us, end_us=end_us, **opts)
    demo.generate_device(dirs["Gappy"], name="Gappy", start_us=start_us,
                         end_us=start_us + 20_000_000, **opts)
    demo.generate_device(dirs["Gappy"], name="Gappy", start_us=start_us + 40_000_000,
                         end_us=end_us, **opts)
    demo.generate_device(dirs["Matroska"], name="Matroska", start_us=start_us, end_us=end_us,
                         fmt="mkv", **opts)
    dirs["Off"].mkdir()
    return {"dirs": dirs, "start_us": start_us, "end_us": end_us}


@pytest.fixture
def make_config(tmp_path: Path, api_archive: dict[str, Any]) -> Callable[..., Any]:
    """Factory: a :class:`Config` over the API archive; keyword args are tables to merge.

    ``make_config(export={"max_queued_jobs": 3}, auth={...})``; data lives under ``tmp_path``.
    """
    from sense_plugin.config import config_from_dict

    def make(**tables: Any) -> Any:
        devices = [{"deviceid": str(i), "name": n, "archive_dir": str(api_archive["dirs"][n]),
                    "enabled": n != "Off"} for n, i in API_DEVICES.items()]
        data: dict[str, Any] = {
            "server": {"serverid": str(API_SERVER_ID), "name": "Test recorder",
                       "data_dir": "data"},
            "archive": {"demo": False}, "devices": devices,
        }
        for table, values in tables.items():
            data[table] = {**data.get(table, {}), **values}
        return config_from_dict(data, base_dir=tmp_path)

    return make


@pytest.fixture
def make_client(aiohttp_client: Any) -> Callable[..., Any]:
    """Factory: ``await make_client(config)`` → a TestClient of ``create_app(config)``."""
    from sense_plugin.api.app import create_app

    async def make(config: Any) -> Any:
        return await aiohttp_client(create_app(config))

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any], make_config: Callable[..., Any]) -> Any:
    """A client of the default test server (authentication off)."""
    return await make_client(make_config())


# ---------------------------------------------------------------------------------------------
# Export integrity fixtures (downloads, stalls): one device with a big file.
# ---------------------------------------------------------------------------------------------

BIG_DEVICE = 9890179877273119879


@pytest.fixture(scope="session")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """12 s of all-keyframe 8 Mbit/s video (about 8 MB): more than the socket buffers hold."""
    import time

    end_us = (int(time.time()) - 300) * 1_000_000
    directory = tmp_path_factory.mktemp("big-archive")
    demo.generate_device(directory, name="Big", start_us=end_us - 12_000_000, end_us=end_us,
                         segment_s=12, fps=25, gop_frames=1, bitrate_bps=8_000_000)
    return directory, end_us - 12_000_000


@pytest.fixture
def big_config(tmp_path: Path, big_archive: tuple[Path, int]) -> Callable[..., Any]:
    """Factory: ``big_config(**export keys)`` → a Config with only the Big device."""
    from sense_plugin.config import config_from_dict

    def make(**export: Any) -> Any:
        return config_from_dict({
            "server": {"serverid": "7015498111931795223", "data_dir": "data"},
            "archive": {"demo": False}, "export": export,
            "devices": [{"deviceid": str(BIG_DEVICE), "name": "Big",
                         "archive_dir": str(big_archive[0])}]}, base_dir=tmp_path)
    return make


# ---------------------------------------------------------------------------------------------
# Export file fixtures (names, splits, killed workers): one device at 2 Mbit/s.
# ---------------------------------------------------------------------------------------------

BUSY_DEVICE = 42
#: 30 s at 2 Mbit/s with a keyframe every second: about 7 parts of 1 MB.
BUSY_SECONDS = 30


@pytest.fixture(scope="session")
def busy_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The Busy device's archive (320x240, 25 fps) ending five minutes ago; (dir, start µs)."""
    import time

    end_us = (int(time.time()) - 300) * 1_000_000
    start_us = end_us - BUSY_SECONDS * 1_000_000
    directory = tmp_path_factory.mktemp("busy-archive")
    demo.generate_device(directory, name="Busy", start_us=start_us, end_us=end_us,
                         segment_s=10, width=320, height=240, fps=25, gop_frames=25,
                         bitrate_bps=2_000_000)
    return directory, start_us


@pytest.fixture
def busy_config(tmp_path: Path, busy_archive: tuple[Path, int]) -> Any:
    """A Config with only the Busy device, data under ``tmp_path``."""
    from sense_plugin.config import config_from_dict

    return config_from_dict({
        "server": {"serverid": "7015498111931795223", "data_dir": "data"},
        "archive": {"demo": False},
        "devices": [{"deviceid": str(BUSY_DEVICE), "name": "Busy",
                     "archive_dir": str(busy_archive[0])}]}, base_dir=tmp_path)
