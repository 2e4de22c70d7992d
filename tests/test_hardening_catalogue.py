"""Bad-input catalogue: every hostile or broken request over the real HTTP server.

One table, one server: each case names the request and the result code it must get. An
export is accepted before the catalogue starts and must complete with a correct file after
it; no answer may carry Python exception text.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from apiclient import command, export_body, parse_result, wait_export
from conftest import API_DEVICES, API_SERVER_ID
from lxml import etree
from yarl import URL

from sense_plugin.timestamps import format_timestamp, now_us

STEADY, OFF = API_DEVICES["Steady"], API_DEVICES["Off"]
MAX_DEVICES = 4
MAX_SPAN_S = 3600
BODY_LIMIT_KB = 1024
#: Text that would betray a Python exception or internal detail in an answer.
LEAKS = (b"Traceback", b"Error(", b'File "', b"Exception", b"sqlite3", b"lxml", b"errno",
         b"/usr/lib/python", b"site-packages", b"root:x:0:0")


@dataclass
class Case:
    """One catalogue entry: a request and the answer it must get."""

    name: str
    code: int
    query: str = ""                 # raw (already encoded) query string after '/command?'
    body: bytes | None = None
    http: int | None = None          # expected HTTP status (default: 200, or 401/413 by code)
    headers: dict[str, str] = field(default_factory=dict)


def span(archive: dict[str, Any], start_s: float, end_s: float) -> tuple[str, str]:
    base = archive["start_us"]
    return format_timestamp(base + int(start_s * 1e6)), format_timestamp(base + int(end_s * 1e6))


def device_xml(deviceid: Any = STEADY, start: str = "", end: str = "", extra: str = "") -> str:
    return (f"<device>{extra}<deviceid>{deviceid}</deviceid><starttime>{start}</starttime>"
            f"<endtime>{end}</endtime></device>")


def catalogue(archive: dict[str, Any], outside: Path, escape_link: str) -> list[Case]:
    """The whole table; ``escape_link`` is a symlink inside the export root pointing out."""
    start, end = span(archive, 0, 5)
    ok_device = device_xml(STEADY, start, end)

    def export(devices: str = ok_device, extra: str = "") -> bytes:
        return f"<export><devices>{devices}</devices>{extra}</export>".encode()

    def with_path(path: str) -> bytes:
        return export(extra=f"<path>{path}</path>")

    def with_times(s: str, e: str) -> bytes:
        return export(device_xml(STEADY, s, e))

    create = "command=exportVideo"
    status = "command=getExportVideoStatus"
    deep = b"<export>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</export>"
    laughs = (b'<?xml version="1.0"?><!DOCTYPE export [<!ENTITY a "lol">'
              + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                         for i in range(9))
              + b"]><export><path>&j;</path></export>")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE export [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           f"<export><devices>{ok_device}</devices><path>&x;</path></export>").encode()
    future = format_timestamp(archive["end_us"] + 10 * 86_400 * 1_000_000)
    too_many = "".join(device_xml(STEADY, start, end) for _ in range(MAX_DEVICES + 1))
    long_span = span(archive, -MAX_SPAN_S - 10, 0)
    return [
        # -- XML that is not a plain document -------------------------------------------------
        Case("malformed-xml", -1003, create, b"<export><devices><device></export>"),
        Case("not-xml-at-all", -1003, create, b"\x00\xff\xfe garbage"),
        Case("invalid-utf8", -1003, create, b"<export><path>\xff\xfe</path></export>"),
        Case("dtd", -1003, create, b'<!DOCTYPE export [<!ELEMENT export ANY>]><export/>'),
        Case("dtd-lowercase-spaced", -1003, create, b"<!doctype export SYSTEM 'x.dtd'><export/>"),
        Case("billion-laughs", -1003, create, laughs),
        Case("external-entity-local-file", -1003, create, xxe),
        Case("entity-without-dtd", -1003, create, export(extra="<path>&x;</path>")),
        Case("wrong-root", -1003, create, b"<exports><devices/></exports>"),
        Case("wrong-root-login-doc", -1003, create,
             b"<AuthenticateUser><username>a</username></AuthenticateUser>"),
        Case("deep-nesting-100k", -1003, create, deep),
        Case("body-over-limit", -22, create, b"<export>" + b" " * (BODY_LIMIT_KB * 1024 + 10)
             + b"</export>", http=413),
        # -- missing and empty ----------------------------------------------------------------
        Case("empty-body", -10, create, b""),
        Case("whitespace-body", -10, create, b"  \n "),
        Case("no-devices-element", -10, create, b"<export><path>x</path></export>"),
        Case("devices-empty", -10, create, b"<export><devices/></export>"),
        Case("no-deviceid", -10, create,
             export(f"<device><starttime>{start}</starttime><endtime>{end}</endtime></device>")),
        Case("no-starttime", -10, create,
             export(f"<device><deviceid>{STEADY}</deviceid><endtime>{end}</endtime></device>")),
        Case("no-endtime", -10, create,
             export(f"<device><deviceid>{STEADY}</deviceid><starttime>{start}</starttime></device>")),
        Case("no-command", -10, "exportid=1"),
        Case("remove-without-exportid", -10, "command=exportVideo&action=remove"),
        Case("empty-deviceid", -23, create, export(device_xml("", start, end))),
        Case("blank-starttime", -23, create, export(device_xml(STEADY, "   ", end))),
        Case("empty-endtime", -23, create, export(device_xml(STEADY, start, ""))),
        Case("empty-path", -23, create, with_path("")),
        Case("empty-bandwidth", -23, create, export(extra="<bandwidth/>")),
        Case("empty-exportid-param", -23, f"{status}&exportid="),
        Case("empty-command", -23, "command="),
        # -- timestamps -----------------------------------------------------------------------
        Case("feb-30", -4, create, with_times("2026-02-30 00:00:00", end)),
        Case("hour-25", -4, create, with_times("2026-01-01 25:00:00", end)),
        Case("minute-60", -4, create, with_times("2026-01-01 10:60:00", end)),
        Case("month-13", -4, create, with_times("2026-13-01 00:00:00", end)),
        Case("year-0", -4, create, with_times("0000-01-01 00:00:00", end)),
        Case("year-five-digits", -4, create, with_times(start, "10000-01-01 00:00:00")),
        Case("fraction-7-digits", -4, create, with_times("2026-01-01 00:00:00.1234567", end)),
        Case("other-timezone", -4, create, with_times("2026-01-01 00:00:00+02:00", end)),
        Case("garbage-time", -4, create, with_times("yesterday", end)),
        Case("unix-seconds", -4, create, with_times("1795168800", end)),
        Case("fullwidth-digits", -4, create, with_times("２０２６-01-01 00:00:00", end)),
        Case("sql-in-time", -4, create, with_times("'; DROP TABLE jobs; --", end)),
        # -- ranges ---------------------------------------------------------------------------
        Case("start-after-end", -22, create, with_times(end, start)),
        Case("start-equals-end", -22, create, with_times(start, start)),
        Case("span-above-maximum", -22, create, with_times(*long_span)),
        Case("end-in-future", -22, create, with_times(start, future)),
        Case("too-many-devices", -22, create, export(too_many)),
        Case("format-unknown", -22, create, export(extra="<format>avi</format>")),
        Case("name-too-long", -22, create, export(extra=f"<name>{'n' * 201}</name>")),
        # -- servers and devices --------------------------------------------------------------
        Case("unknown-server", -17, create,
             export(device_xml(STEADY, start, end, "<serverid>42</serverid>"))),
        Case("server-2-64", -17, create,
             export(device_xml(STEADY, start, end, f"<serverid>{2**64}</serverid>"))),
        Case("server-negative", -17, create,
             export(device_xml(STEADY, start, end, "<serverid>-1</serverid>"))),
        Case("unknown-device", -2, create, export(device_xml(12345, start, end))),
        Case("device-non-numeric", -2, create, export(device_xml("cam1", start, end))),
        Case("device-2-64", -2, create, export(device_xml(2**64, start, end))),
        Case("device-list-unknown-server", -17, "command=getServerStatus&serverid=1"),
        Case("disabled-device", -21, create, export(device_xml(OFF, start, end))),
        # -- export ids -----------------------------------------------------------------------
        *[Case(f"exportid-{label}-{verb}", -57, f"{q}&exportid={value}")
          for label, value in (("alpha", "abc"), ("negative", "-1"), ("zero", "0"),
                               ("2-64", str(2**64)), ("unknown", "999999"), ("hex", "0x10"),
                               ("float", "1.0"), ("huge", "9" * 40))
          for verb, q in (("status", status), ("remove", "command=exportVideo&action=remove"),
                          ("retry", "command=exportVideo&action=retry"))],
        Case("exportid-unknown-in-body", -57, create,
             b"<export><exportid>424242</exportid><action>remove</action></export>"),
        Case("unknown-action", -22, "command=exportVideo&action=explode&exportid=1"),
        # -- bandwidth ------------------------------------------------------------------------
        Case("bandwidth-negative", -22, create, export(extra="<bandwidth>-5</bandwidth>")),
        Case("bandwidth-alpha", -22, create, export(extra="<bandwidth>fast</bandwidth>")),
        Case("bandwidth-float", -22, create, export(extra="<bandwidth>1.5</bandwidth>")),
        Case("bandwidth-huge", -22, create, export(extra=f"<bandwidth>{10**30}</bandwidth>")),
        Case("bandwidth-below-least", -22, create, export(extra="<bandwidth>1</bandwidth>")),
        Case("limit-zero", -22, f"{status}&limit=0"),
        Case("offset-negative", -22, f"{status}&offset=-1"),
        Case("status-filter-unknown", -22, f"{status}&status=EXPLODED"),
        # -- paths ----------------------------------------------------------------------------
        Case("path-dotdot", -1004, create, with_path("../escape")),
        # the export accepted before the storm is export 1, in unnamed/1
        Case("path-inside-an-export-directory", -1004, create, with_path("unnamed/1/sub")),
        Case("path-is-an-export-directory", -1004, create, with_path("unnamed/1")),
        Case("device-repeated-same-start", -22, create,
             export(ok_device + device_xml(STEADY, start, span(archive, 0, 9)[1]))),
        Case("path-dotdot-inner", -1004, create, with_path("a/../../b")),
        Case("path-absolute-outside", -1004, create, with_path(str(outside))),
        Case("path-etc", -1004, create, with_path("/etc")),
        Case("path-symlink-escape", -1004, create, with_path(escape_link)),
        Case("path-symlink-escape-child", -1004, create, with_path(f"{escape_link}/deeper")),
        Case("path-control-char", -1004, create, with_path("a&#9;b")),
        Case("path-nul-raw-byte", -1003, create, with_path("a\x00b")),  # NUL is not XML
        Case("path-nul-char-ref", -1003, create, with_path("a&#0;b")),
        Case("path-long-component", -1004, create, with_path("x" * 300)),
        Case("path-long-total", -1004, create, with_path("/".join(["y" * 100] * 12))),
        # -- command names and parameters -----------------------------------------------------
        Case("unknown-command", -1, "command=rmRf"),
        Case("command-lower", 0, "command=getexportvideostatus"),
        Case("command-upper", 0, "command=GETEXPORTVIDEOSTATUS"),
        Case("command-mixed", 0, "command=GeTeXpOrTvIdEoStAtUs"),
        Case("command-percent", 0, "command=get%45xport%56ideo%53tatus"),
        Case("command-percent-name", 0, "%63ommand=getDeviceList"),
        Case("param-name-upper", -57, "COMMAND=getExportVideoStatus&EXPORTID=abc"),
        Case("command-repeated-same", 0, "command=getDeviceList&command=getDeviceList"),
        Case("command-repeated-different", -22, "command=getDeviceList&command=getDivaList"),
        Case("exportid-repeated-different", -22, f"{status}&exportid=1&exportid=2"),
        Case("cache-buster-ignored", 0, f"{status}&noCache=123&noCache=456"),
        Case("command-with-nul", -1, "command=getDeviceList%00"),
        Case("command-very-long", -1, "command=" + "A" * 8000),
        Case("percent-garbage", -1, "command=%ZZ%"),
        # -- forged browser requests: refused even with authentication off ------
        Case("csrf-create-text-plain-form", -1002, create, export(),
             headers={"Origin": "http://evil.example", "Content-Type": "text/plain"}),
        Case("csrf-remove-img-same-site", -1002, "command=exportVideo&action=remove&exportid=1",
             headers={"Sec-Fetch-Site": "same-site"}),
        Case("csrf-retry-cross-site", -1002, "command=exportVideo&action=retry&exportid=1",
             headers={"Sec-Fetch-Site": "cross-site"}),
        Case("csrf-remove-body-null-origin", -1002, create,
             b"<export><exportid>1</exportid><action>remove</action></export>",
             headers={"Origin": "null"}),
        Case("csrf-create-other-port", -1002, create, export(),
             headers={"Origin": "http://127.0.0.1:1"}),
        Case("csrf-logout-cross-site", -1002, "command=logout",
             headers={"Sec-Fetch-Site": "cross-site"}),
        Case("csrf-unknown-command-still-unknown", -1, "command=rmRf",
             headers={"Sec-Fetch-Site": "cross-site"}),
        Case("cross-origin-read-allowed", 0, status, headers={"Origin": "http://evil.example"}),
        # -- DNS rebinding: a page whose name now resolves to this server, same-origin to it --
        Case("rebound-host-create", -1002, create, export(), http=421,
             headers={"Host": "rebind.attacker.example", "Origin": "http://rebind.attacker.example",
                      "Sec-Fetch-Site": "same-origin", "X-Requested-With": "x"}),
        Case("rebound-host-read", -1002, status, http=421,
             headers={"Host": "rebind.attacker.example:8080"}),
        Case("logout-scope-unknown", -22, "command=logout&scope=universe"),
        Case("logout-with-body", -22, "command=logout", b"<logout/>"),
        Case("logout-without-session", 0, "command=logout"),
        Case("device-id-param-garbage", -2,
             f"command=getRecordings&deviceid=cam&starttime={start}&endtime={end}".replace(
                 " ", "+")),
        *kind_cases(archive, export, device_xml, create),
        *render_cases(archive, export, device_xml, create),
        *custody_cases(archive, export, device_xml, create),
    ]


def custody_cases(archive: dict[str, Any], export: Callable[..., bytes],
                  device: Callable[..., str], create: str) -> list[Case]:
    """The chain of custody's bad input (docs/custody.rst); export 1 is still running."""
    start, end = span(archive, 0, 5)
    ok = device(STEADY, start, end)
    act = "command=exportVideo&action={}&exportid={}"
    return [
        Case("callback-host-not-allowed", -22, create,
             export(ok, "<callback>http://evil.example/hook</callback>")),
        Case("callback-not-http", -22, create,
             export(ok, "<callback>file:///etc/passwd</callback>")),
        Case("format-pdf-for-stream", -22, create, export(ok, "<format>pdf</format>")),
        Case("hold-unknown-export", -57, act.format("hold", 987654)),
        Case("hold-running-export", -22, act.format("hold", 1)),
        Case("release-not-held", -22, act.format("release", 1)),
        Case("bundle-of-unfinished-export", -1006,
             "command=downloadExportVideo&exportid=1&file=bundle.zip"),
        Case("audit-log-limit-zero", -22, "command=getAuditLog&limit=0"),
        Case("audit-log-time-garbage", -4, "command=getAuditLog&starttime=yesterday"),
        Case("audit-log-exportid-alpha", -57, "command=getAuditLog&exportid=abc"),
    ]


def kind_cases(archive: dict[str, Any], export: Callable[..., bytes],
               device: Callable[..., str], create: str) -> list[Case]:
    """Bad export kinds and options (docs/exports.rst, docs/rendering.rst): each refused,
    nothing queued."""
    start, end = span(archive, 0, 5)
    snap_only_end = f"<device><deviceid>{STEADY}</deviceid><endtime>{end}</endtime></device>"
    gap = span(archive, 30, 31)[0]
    gappy = (f"<device><deviceid>{API_DEVICES['Gappy']}</deviceid><starttime>{gap}</starttime>"
             "</device>")
    # after now whenever the case runs (the archive fixture is made once per session)
    future = format_timestamp(max(archive["end_us"], now_us()) + 600 * 1_000_000)
    bad = {"maxfilesize-negative": ("<maxfilesize>-1</maxfilesize>", -22),
           "maxfilesize-not-a-number": ("<maxfilesize>1e3</maxfilesize>", -22),
           "maxfilesize-empty": ("<maxfilesize/>", -23),
           "keepalive-negative": ("<keepalive>-5</keepalive>", -22),
           "mode-unknown": ("<mode>replay</mode>", -22),
           "output-unknown": ("<output>movie</output>", -22),
           "audio-yes": ("<audio>yes</audio>", -22),
           "format-jpg-for-stream": ("<format>jpg</format>", -22),
           "timestamps-burnt": ("<timestamps>burnt</timestamps>", -22),
           "timestamps-subtitle-in-ts": ("<timestamps>subtitle</timestamps><format>ts</format>",
                                         -22),
           "render-width-tiny": ("<render><width>9</width></render>", -22),
           "live-archive-only-device": ("<mode>live</mode>", -22)}
    cases = [Case(f"kind-{name}", code, create, export(
        device(STEADY, start, future if name.startswith("live") else end), extra))
        for name, (extra, code) in bad.items()]
    return [*cases,
            Case("kind-snapshot-endtime-only", -10, create,
                 export(snap_only_end, "<output>snapshot</output>")),
            Case("kind-snapshot-in-mkv", -22, create,
                 export(device(STEADY, start, end),
                        "<output>snapshot</output><format>mkv</format>")),
            Case("kind-snapshot-in-a-gap", -9, create,
                 export(gappy, "<output>snapshot</output>")),
            Case("kind-stop-unknown", -57, "command=exportVideo&action=stop&exportid=987654")]


def render_cases(archive: dict[str, Any], export: Callable[..., bytes],
                 device: Callable[..., str], create: str) -> list[Case]:
    """Bad ``<render>`` input: each refused with its code, nothing queued."""
    start, end = span(archive, 0, 5)
    mask = "<mask><x>{}</x><y>0.1</y><w>{}</w><h>0.2</h></mask>"
    bad = {"position": "<timestamp><position>middle</position></timestamp>",
           "colour-name": "<timestamp><color>red</color></timestamp>",
           "colour-short": "<comment><text>x</text><color>#fff</color></comment>",
           "mask-outside": mask.format("0.9", "0.3"),
           "mask-negative": mask.format("-0.1", "0.3"),
           "mask-empty": mask.format("0.1", "0"),
           "fps-zero": "<fps>0</fps>", "fps-negative": "<fps>-5</fps>",
           "width-tiny": "<width>15</width>", "codec": "<codec>vp9</codec>",
           "quality": "<quality>best</quality>",
           "strftime-invalid": "<timestamp><format>%Q</format></timestamp>",
           "strftime-too-long": f"<timestamp><format>{'%H' * 51}</format></timestamp>",
           # what cannot be rendered: refused at admission, never an incident later
           "crop-under-2px-anywhere": "<crop><x>1</x><y>0</y><w>1e-9</w><h>1</h></crop>",
           "crop-under-2px-here": "<crop><x>0</x><y>0</y><w>0.02</w><h>1</h></crop>",
           "mask-under-2px-here": mask.format("0.5", "0.01"),
           "fps-denormal": "<fps>4.9e-324</fps>", "fps-below-one": "<fps>0.5</fps>",
           "h265-under-16px": "<codec>h265</codec><crop><x>0</x><y>0</y><w>1</w><h>0.2</h></crop>"}
    cases = [Case(f"render-{name}", -22, create,
                  export(device(STEADY, start, end), f"<render>{xml}</render>"))
             for name, xml in bad.items()]
    snapshot = "<output>snapshot</output><format>jpg</format><render><fps>5</fps></render>"
    return [*cases, Case("render-fps-for-snapshot", -22, create,
                         export(device(STEADY, start, end), snapshot))]


async def send(client: Any, case: Case) -> tuple[int, int, bytes]:
    """Send one case as-is (query not re-encoded) and return HTTP status, errorcode, body."""
    url = client.make_url("/command").with_query(None)
    url = URL(f"{url}?{case.query}", encoded=True) if case.query else url
    method = "POST" if case.body is not None else "GET"
    data = None if case.body is None else io.BytesIO(case.body)
    async with client.session.request(method, url, data=data, headers=case.headers) as resp:
        body = await resp.read()
        root = parse_result(body, None)
        return resp.status, int(root.get("errorcode")), body


def expected_http(case: Case) -> int:
    if case.http is not None:
        return case.http
    return 401 if case.code == -1001 else 200


async def test_catalogue(make_client: Callable[..., Any], make_config: Callable[..., Any],
                         api_archive: dict[str, Any], tmp_path: Path) -> None:
    config = make_config(http={"max_body_kb": BODY_LIMIT_KB},
                         export={"max_devices_per_export": MAX_DEVICES, "max_span_s": MAX_SPAN_S})
    client = await make_client(config)
    root_dir = config.server.export_roots[0]
    root_dir.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root_dir / "escape-link")
    cases = catalogue(api_archive, outside, "escape-link")
    assert len({c.name for c in cases}) == len(cases)

    # An export accepted before the storm, paced so it is still running during it.
    start, end = span(api_archive, 0, 20)
    accepted = await command(client, "exportVideo",
                             body=export_body([(STEADY, start, end)], bandwidth=300))
    export_id = int(accepted.findtext("exportid"))

    wrong = []
    for case in cases:
        http, code, body = await send(client, case)
        if (http, code) != (expected_http(case), case.code):
            wrong.append(f"{case.name}: got HTTP {http} code {code}, expected "
                         f"HTTP {expected_http(case)} code {case.code}: {body[:200]!r}")
        leaked = [marker for marker in LEAKS if marker in body]
        if leaked:
            wrong.append(f"{case.name}: answer leaks {leaked}: {body[:300]!r}")
    assert not wrong, "\n".join(wrong)
    print(f"\ncatalogue: {len(cases)} cases")

    # Nothing else was queued, and the server still answers.
    listing = await command(client, "getExportVideoStatus")
    assert [e.findtext("exportid") for e in listing.findall("exports/export")] == [str(export_id)]
    info = await client.get("/info")
    assert info.status == 200
    await command(client, "getDeviceList")
    assert not any(outside.iterdir()), "nothing may be written outside the export roots"

    export = await wait_export(client, export_id, timeout_s=60)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
    file_el = export.find("devices/device/files/file")
    path = root_dir / "unnamed" / str(export_id) / file_el.findtext("name")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == file_el.findtext("sha256")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
    assert frames == int(file_el.findtext("framecount")) == 200
    assert not list(root_dir.rglob("*.part"))


async def test_serverid_string_is_accepted_as_documented(client: Any,
                                                         api_archive: dict[str, Any]) -> None:
    """The control case: the same request with a correct serverid is accepted."""
    start, end = span(api_archive, 0, 2)
    body = (f"<Export><Devices><Device><ServerId>{API_SERVER_ID}</ServerId>"
            f"<DeviceId>{STEADY}</DeviceId><StartTime>{start}</StartTime>"
            f"<EndTime>{end}</EndTime></Device></Devices><Unknown>x</Unknown></Export>")
    root = await command(client, "exportVideo", body=body)
    await wait_export(client, int(root.findtext("exportid")))


# ---------------------------------------------------------------------------------------------
# File names and places: a name two devices would both write, an export's files moved into
# another export's directory, a symlink put among an export's files (docs/verify.rst).
# ---------------------------------------------------------------------------------------------


async def test_catalogue_colliding_names_and_swapped_files(
        make_client: Callable[..., Any], busy_config: Any, busy_archive: tuple[Path, int],
        tmp_path: Path) -> None:
    import shutil

    from test_export_names import device as busy_device
    from test_export_names import public_key

    from sense_plugin.cli import main

    t0, client = busy_archive[1], await make_client(busy_config)
    collide = (f"<export><devices>{busy_device(t0 + 1_000_000, t0 + 20_000_000)}"
               f"{busy_device(t0 + 1_250_000, t0 + 14_000_000)}</devices>"
               "<maxfilesize>1</maxfilesize><path>collide</path></export>")
    plain = (f"<export><devices>{busy_device(t0 + 1_000_000, t0 + 3_000_000)}</devices>"
             "<path>plain</path></export>")
    exports = []
    for body in (collide, plain):
        export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
        exports.append(await wait_export(client, export_id, 120))
    codes = sorted(d.findtext("errorcode") or "0" for d in exports[0].iterfind("devices/device"))
    assert codes == ["-18", "0"], etree.tostring(exports[0]).decode()  # never overwritten
    root, key = busy_config.server.export_roots[0], str(public_key(busy_config, tmp_path))
    first, second = (root / e.findtext("path") / e.findtext("exportid") for e in exports)
    assert main(["verify", str(first), "--key", key]) == 1  # the failed device, nothing else
    wrong: list[str] = []
    for path in first.iterdir():  # the plain export's signed files in the first's directory
        path.unlink()
    for path in second.iterdir():
        shutil.copy2(path, first / path.name)
    (second / "link.mp4").symlink_to(first / "manifest.xml")
    for directory, must in ((first, "WARNING this directory"), (second, "SYMLINK link.mp4")):
        result = subprocess_verify(directory, key)
        if must not in result:
            wrong.append(f"{directory}: {must!r} not in {result}")
    assert not wrong, "\n".join(wrong)


def subprocess_verify(directory: Path, key: str) -> str:
    """``sense-plugin verify`` as a user runs it: its whole output."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "sense_plugin", "verify", str(directory),
                           "--key", key], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr
