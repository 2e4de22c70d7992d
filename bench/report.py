"""Benchmark results: machine facts, JSON, a Markdown table and a PNG chart of B1 and B2."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    import aiohttp
    import av
    import lxml.etree

    import sense_plugin

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host_cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "sense_plugin": sense_plugin.__version__,
        "git": _cmd(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"]),
        "av": av.__version__, "ffmpeg_in_av": av.library_versions.get("libavformat"),
        "aiohttp": aiohttp.__version__, "lxml": lxml.etree.__version__,
        "ffmpeg_cli": _cmd(["ffmpeg", "-version"]).split("\n", 1)[0],
        "wrk": _cmd(["wrk", "--version"]).split("\n", 1)[0] or "wrk",
        "load_average_at_start": os.getloadavg(),
        "sha": sha_support(),
    }


def sha_support() -> str:
    """Whether the CPU has SHA instructions (x86 ``sha_ni``, Arm ``sha2``): OpenSSL's SHA-256
    runs several times faster with them, which moves the floor of an export."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    if "sha_ni" in flags or "sha2" in flags:
        return "SHA instructions: yes (" + ("sha_ni" if "sha_ni" in flags else "sha2") + ")"
    return "SHA instructions: none"


def _yes(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def _b1_rows(res: dict) -> list[str]:
    """B1 (export against its floor and the ffmpeg peer) and the jobs-at-once rows."""
    lines: list[str] = []
    if "b1" in res:
        b1 = res["b1"]
        what = {"sense": "sense export (POST → COMPLETED)",
                "floor": "floor: read + write + SHA-256 + fsync, one pass",
                "peer": "peer: ffmpeg -c copy + sha256sum + sync"}
        for name, label in what.items():
            r = b1[name]
            lines.append(f"| B1 {b1['range_s'] // 60} min 1080p | {label}, median (min–max) | "
                         f"{r['median']:.3f} s ({r['min']:.3f}–{r['max']:.3f}); "
                         f"{r['mb_per_s']:.0f} MB/s | | |")
        if "cpu_s" in b1:
            cpu = b1["cpu_s"]
            lines.append(f"| B1 | CPU seconds per run, median: sense (server + worker) / floor / "
                         f"peer | {cpu['sense']['median']:.2f} / {cpu['floor']['median']:.2f} / "
                         f"{cpu['peer']['median']:.2f} s | | |")
        t = list(b1["targets"].values())
        for (other, target), ok in zip((("floor", "≤ 1.25"), ("peer", "≤ 0.5")), t, strict=True):
            r = b1[f"sense_over_{other}"]
            lines.append(f"| B1 | sense/{other}, pairwise median (min–max) | {_span(r)} | "
                         f"{target} | {_yes(ok)} |")
    if "jobs" in res:
        jobs = res["jobs"]
        floors = jobs.get("floor_concurrent", {})
        for count, r in jobs["concurrent"].items():
            target, verdict = "", ""
            if count == "2":
                target, verdict = "≤ 1.25", _yes(r["over_one"]["median"] <= 1.25)
            cpu = jobs["cpu_s_per_export"]
            lines.append(f"| jobs | {count} exports at once / one, pairwise median (min–max); "
                         f"CPU s per export (one alone) | {_span(r['over_one'])}; "
                         f"{cpu[count]['median']:.2f} ({cpu['1']['median']:.2f}) | "
                         f"{target} | {verdict} |")
            if count in floors:
                lines.append(f"| jobs | floor: {count} passes at once / one, pairwise median "
                             f"(min–max) | {_span(floors[count]['over_one'])} | | |")
    return lines


def _span(r: dict) -> str:
    return f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})"


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Benchmarks of {m['date']}: sense_plugin {m['sense_plugin']} ({m['git']}), "
             f"{m['cores']} cores {m['host_cpu']} ({m.get('sha', 'SHA support unknown')}), "
             f"{m['memory_gb']} GB, load average at start {m['load_average_at_start']}, "
             f"Python {m['python']}, "
             f"PyAV {m['av']}, aiohttp {m['aiohttp']}, {m['ffmpeg_cli']}, {m['wrk']}. "
             f"Archive: {res['archive']['recipe']}.", ""]
    lines += ["| bench | measure | result | target | verdict |", "|---|---|---|---|---|"]
    lines += _b1_rows(res)
    if "b2" in res:
        b2 = res["b2"]
        for case, r in b2["cases"].items():
            target, verdict = "", ""
            if case == "by_id / idle":
                target, verdict = "≥ 2000 req/s", _yes(r["req_per_s"] >= 2000)
            elif case == "list / 2 exports running":
                target, verdict = "p99 ≤ 25 ms", _yes(r["p99_ms"] <= 25)
            elif case == "by_id / 2 exports running":
                target, verdict = "p99 ≤ 10 ms", _yes(r["p99_ms"] <= 10)
            lines.append(f"| B2 {b2['connections']} conn {b2['duration_s']} s | {case} "
                         f"({r['exports_in_history']} in history) | {r['req_per_s']:.0f} req/s, "
                         f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms | {target} | "
                         f"{verdict} |")
    if "b3" in res:
        b3 = res["b3"]
        for span, r in b3["spans"].items():
            lines.append(f"| B3 | peak RSS exporting {span} | server {r['server_peak_mb']:.0f} MB, "
                         f"worker {r['worker_peak_mb']:.0f} MB, all processes "
                         f"{r['sum_peak_mb']:.0f} MB | | |")
        g = b3["growth_mb"]
        lines.append(f"| B3 | growth 10 → 60 min | server {g['server_peak_mb']:+.1f} MB, worker "
                     f"{g['worker_peak_mb']:+.1f} MB, all {g['sum_peak_mb']:+.1f} MB | ≤ 30 MB | "
                     f"{_yes(list(b3['targets'].values())[0])} |")
    if "b4" in res:
        b4 = res["b4"]
        lines.append(f"| B4 {b4['exports']} exports | paged status limit=10, p50 (p99) | "
                     f"{b4['paged_limit10']['p50_ms']:.2f} ms "
                     f"({b4['paged_limit10']['p99_ms']:.2f} ms) | ≤ 10 ms | "
                     f"{_yes(b4['paged_limit10']['p50_ms'] <= 10)} |")
        lines.append(f"| B4 | by id, p50 (p99) | {b4['by_id']['p50_ms']:.2f} ms "
                     f"({b4['by_id']['p99_ms']:.2f} ms) | ≤ 5 ms | "
                     f"{_yes(b4['by_id']['p50_ms'] <= 5)} |")
        lines.append(f"| B4 | full list of {b4['exports']}, p50; server start | "
                     f"{b4['full_list']['p50_ms']:.0f} ms; {b4['server_start_s']:.1f} s | | |")
    lines += ["", f"Total bench time {res['total_s']:.0f} s (archive "
              f"{'cached' if res['archive']['cached'] else 'built'} in "
              f"{res['archive']['build_s']:.0f} s)."]
    return "\n".join(lines) + "\n"


def rst(res: dict) -> str:
    """The Markdown table as a reStructuredText list-table (for README.rst)."""
    lines = markdown(res).splitlines()
    rows = [[c.strip().replace("**", "") for c in line.strip("|").split("|")]
            for line in lines if line.startswith("|") and not line.startswith("|---")]
    out = [lines[0], "", ".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        out.append("   * - " + row[0])
        out += [f"     - {cell}".rstrip() for cell in row[1:]]
    out += ["", lines[-1]]
    return "\n".join(out) + "\n"


#: p99 goals of B2's cases while exports run, ms (drawn over their bars).
P99_TARGETS_MS = {"by_id / 2 exports running": 10.0, "list / 2 exports running": 25.0}


def chart(res: dict, path: Path) -> None:
    """B1's wall times, jobs at once against the floor's, B2's req/s and latency."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = ("b1" in res) + ("jobs" in res) + 2 * ("b2" in res)
    if not count:
        return
    fig, axes = plt.subplots(1, count, figsize=(4.5 * count, 4))
    panels = list(axes) if hasattr(axes, "__len__") else [axes]
    if "b1" in res:
        _b1_panel(panels.pop(0), res["b1"])
    if "jobs" in res:
        _jobs_panel(panels.pop(0), res["jobs"])
    if "b2" in res:
        _b2_panels(panels.pop(0), panels.pop(0), res["b2"])
    for ax in fig.axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _b1_panel(ax, b1: dict) -> None:  # type: ignore[no-untyped-def]
    names = ["sense", "floor", "peer"]
    med = [b1[n]["median"] for n in names]
    err = [[m - b1[n]["min"] for n, m in zip(names, med, strict=True)],
           [b1[n]["max"] - m for n, m in zip(names, med, strict=True)]]
    ax.bar(names, med, yerr=err, capsize=6, color=["tab:green", "tab:blue", "tab:gray"])
    ax.set_ylabel("wall time, s (median, min–max)")
    ax.set_title(f"B1: export {b1['range_s'] // 60} min 1080p25 4 Mbit/s")


def _jobs_panel(ax, jobs: dict) -> None:  # type: ignore[no-untyped-def]
    counts = list(jobs["concurrent"])
    x = range(len(counts))
    ax.bar([i - 0.2 for i in x], [jobs["concurrent"][n]["over_one"]["median"] for n in counts],
           0.4, color="tab:green", label="exports")
    floors = jobs.get("floor_concurrent", {})
    if floors:
        ax.bar([i + 0.2 for i in x], [floors[n]["over_one"]["median"] for n in counts], 0.4,
               color="tab:blue", label="floor passes")
    ax.hlines(1.25, -0.45, 0.45, color="red", ls="--", lw=1, label="target (2 at once)")
    ax.set_xticks(list(x), [f"{n} at once" for n in counts])
    ax.set_ylabel("wall time over one alone (pairwise median)")
    ax.set_title("jobs: N at once / one")
    ax.legend(fontsize=8)


def _b2_panels(rate_ax, latency_ax, b2: dict) -> None:  # type: ignore[no-untyped-def]
    cases = b2["cases"]
    labels = [c.replace(" / ", "\n").replace("2 exports running", "2 exports") for c in cases]
    rate_ax.bar(labels, [c["req_per_s"] for c in cases.values()], color="tab:blue")
    rate_ax.axhline(2000, color="red", ls="--", lw=1, label="target by-id idle")
    rate_ax.set_ylabel("requests/s")
    rate_ax.set_title(f"B2: {b2['connections']} keep-alive connections")
    rate_ax.legend(fontsize=8)
    x = range(len(cases))
    latency_ax.bar([i - 0.2 for i in x], [c["p50_ms"] for c in cases.values()], 0.4,
                   label="p50")
    latency_ax.bar([i + 0.2 for i in x], [c["p99_ms"] for c in cases.values()], 0.4,
                   label="p99")
    first = True
    for i, name in enumerate(cases):
        if name in P99_TARGETS_MS:
            latency_ax.hlines(P99_TARGETS_MS[name], i - 0.45, i + 0.45, color="red", ls="--",
                              lw=1, label="p99 target" if first else None)
            first = False
    latency_ax.set_xticks(list(x), labels)
    latency_ax.set_ylabel("latency, ms")
    latency_ax.set_title("B2: latency")
    latency_ax.legend(fontsize=8)


def save(res: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(res, indent=1, default=str))
    (out_dir / "latest.md").write_text(markdown(res))
    (out_dir / "latest.rst").write_text(rst(res))
    chart(res, out_dir / "latest.png")
    return out_dir / "latest.md"
