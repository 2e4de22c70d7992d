/* Times and sizes as the page shows them; the wire form is UTC "YYYY-MM-DD HH:MM:SS.zzz". */
"use strict";

const TimeUtil = (() => {
  const TIME_RE =
    /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|\+00:00)?$/;

  /** Epoch milliseconds of a UTC wire time (fraction kept to the millisecond), NaN if invalid. */
  function parseUtc(text) {
    const m = TIME_RE.exec(String(text || "").trim());
    if (!m) return NaN;
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map((v) => parseInt(v || "0", 10));
    // Truncated, never rounded up: the server's .zzz output is itself truncated microseconds.
    const frac = m[7] ? Math.floor(parseFloat(`0${m[7]}`) * 1000 + 1e-6) : 0;
    const ms = Date.UTC(y, mo - 1, d, h, mi, s) + frac;
    const check = new Date(ms);
    // Date.UTC rolls impossible dates over (Feb 30 → Mar 2): refuse them like the server does.
    if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1 || h > 23 || mi > 59
        || s > 59) {
      return NaN;
    }
    return ms;
  }

  /** The wire form with milliseconds: "2026-11-20 10:00:00.000". */
  function formatUtc(ms) {
    return new Date(ms).toISOString().slice(0, 23).replace("T", " ");
  }

  function formatLocal(ms) {
    return new Date(ms).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
  }

  /** "HH:MM" or "HH:MM:SS" (UTC) for axis labels; with the date when ``withDate``. */
  function formatAxis(ms, withSeconds, withDate) {
    const iso = new Date(ms).toISOString();
    const time = withSeconds ? iso.slice(11, 19) : iso.slice(11, 16);
    return withDate ? `${iso.slice(5, 10)} ${time}` : time;
  }

  function formatSpan(seconds) {
    const s = Math.round(seconds);
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
    return `${(s / 3600).toFixed(s % 3600 ? 1 : 0)} h`;
  }

  function formatBytes(bytes) {
    const n = Number(bytes) || 0;
    if (n < 1000) return `${n} B`;
    if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
    if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
    return `${(n / 1e9).toFixed(2)} GB`;
  }

  function formatRate(kbps) {
    const n = Number(kbps) || 0;
    return n >= 10000 ? `${(n / 1000).toFixed(1)} Mbit/s` : `${n} kbit/s`;
  }

  /** Seconds left from bytes written so far, progress (0..100) and the current rate. */
  function etaSeconds(bytes, progress, kbps) {
    if (!(progress > 0) || !(kbps > 0) || progress >= 100) return NaN;
    const total = bytes / (progress / 100);
    return Math.max(0, ((total - bytes) * 8) / (kbps * 1000));
  }

  return { parseUtc, formatUtc, formatLocal, formatAxis, formatSpan, formatBytes, formatRate,
           etaSeconds };
})();
