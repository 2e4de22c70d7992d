/* Times and sizes as the page shows them; the wire form is UTC "YYYY-MM-DD HH:MM:SS.zzz".
   The time fields take local time or UTC (``setZone``), in the same "YYYY-MM-DD HH:MM:SS.zzz"
   form; the other zone is shown beside them. */
"use strict";

const TimeUtil = (() => {
  const TIME_RE =
    /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|\+00:00)?$/;

  let zone = "local";

  /** Epoch milliseconds of a UTC wire time (fraction kept to the millisecond), NaN if invalid. */
  function parseUtc(text) {
    return parseIn(text, true);
  }

  function parseIn(text, utc) {
    const m = TIME_RE.exec(String(text || "").trim());
    if (!m) return NaN;
    if (m[8] && !utc) return NaN;  // "Z" in a local time field
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map((v) => parseInt(v || "0", 10));
    // Truncated, never rounded up: the server's .zzz output is itself truncated microseconds.
    const frac = m[7] ? Math.floor(parseFloat(`0${m[7]}`) * 1000 + 1e-6) : 0;
    const ms = utc ? Date.UTC(y, mo - 1, d, h, mi, s) + frac
      : new Date(y, mo - 1, d, h, mi, s, frac).getTime();
    const check = new Date(ms);
    const parts = utc ? [check.getUTCDate(), check.getUTCMonth(), check.getUTCHours(),
                         check.getUTCMinutes()]
      : [check.getDate(), check.getMonth(), check.getHours(), check.getMinutes()];
    // Dates roll over (Feb 30 → Mar 2), and a local time skipped by a clock change does not
    // exist: refuse them like the server does.
    if (parts[0] !== d || parts[1] !== mo - 1 || parts[2] !== h || parts[3] !== mi || s > 59) {
      return NaN;
    }
    return ms;
  }

  /** The zone of the time fields: "local" or "utc". */
  function setZone(value) {
    zone = value === "utc" ? "utc" : "local";
  }

  function getZone() {
    return zone;
  }

  /** A time field's text in its zone; ``parseField`` reads it back. */
  function formatField(ms) {
    return zone === "utc" ? formatUtc(ms) : formatLocalField(ms);
  }

  function parseField(text) {
    return parseIn(text, zone === "utc");
  }

  /** What a time field's value means in the other zone, for beside the field. */
  function otherZone(ms) {
    return zone === "utc" ? `local: ${formatLocal(ms)}` : `UTC: ${formatUtc(ms)}`;
  }

  function formatLocalField(ms) {
    const t = new Date(ms);
    const two = (n) => String(n).padStart(2, "0");
    return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} `
      + `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}.`
      + String(t.getMilliseconds()).padStart(3, "0");
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

  /** "HH:MM" or "HH:MM:SS" (in the fields' zone) for axis labels; with the date when ``withDate``. */
  function formatAxis(ms, withSeconds, withDate) {
    const iso = zone === "utc" ? new Date(ms).toISOString() : formatLocalField(ms);
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
           etaSeconds, setZone, getZone, formatField, parseField, otherZone };
})();
