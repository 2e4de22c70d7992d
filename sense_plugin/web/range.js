/* The range to export: the start and end fields, the timeline's handles, lanes and zoom, the
   quick buttons, the preview of the end last moved, the fields' time zone, and how much of the
   range each ticked camera has recorded. */
"use strict";

const RangePick = (() => {
  const ZONE_KEY = "sense.zone";
  const { parseUtc, formatUtc, formatField, parseField, otherZone, formatSpan } = TimeUtil;
  const el = ExportView.el;
  const $ = (id) => document.getElementById(id);
  /** From the page: its shared ``state`` and ``guarded(promise)``. */
  let state = null;
  let guarded = null;

  /** Take the page's hooks; the fields' zone is the one chosen last time. */
  function init(page) {
    ({ state, guarded } = page);
    TimeUtil.setZone(localStorage.getItem(ZONE_KEY) || "local");
  }

  function say(id, text) {
    $(id).textContent = text || "";
  }

  function currentRange() {
    const start = parseField($("start").value);
    const end = parseField($("end").value);
    return start < end ? { start, end } : null;
  }

  /** The last ``seconds`` recorded by every ticked camera (to the millisecond, never before the
      earliest recording, so a short archive is not reported with a false gap). */
  async function fillLastRecorded(seconds) {
    try {
      await Cameras.refreshRanges();
    } catch (err) {
      /* keep the ranges loaded at start */
    }
    const devices = Cameras.selectedDevices().filter((d) => Number.isFinite(d.last));
    if (!devices.length) return;
    const end = Math.min(...devices.map((d) => d.last));
    // The wire truncates microseconds: the first frame lies up to 1 ms after the time shown, so
    // starting exactly there would report a sub-millisecond gap and a -9 preview.
    const first = Math.min(...devices.map((d) => d.first)) + 1;
    const start = Math.max(end - seconds * 1000, first);
    setRange(start, end < start + 1000 ? start + 1000 : end);
    state.lastMoved = "start";
    state.timeline.fit();
    updatePreview();
  }

  function setRange(start, end) {
    $("start").value = formatField(start);
    $("end").value = formatField(end);
    onTimeInput(null);
  }

  /** The text fields changed (typed, or set by code): check them and move the handles. */
  function onTimeInput(event) {
    for (const id of ["start", "end"]) {
      if (!event) $(id).removeAttribute("aria-invalid");
      const ms = parseField($(id).value);
      $(`${id}-other`).textContent = Number.isNaN(ms) ? ($(id).value ? "not a valid time" : "")
        : otherZone(ms);
    }
    const range = currentRange();
    showSpan(range);
    if (range) state.timeline.setRange(range.start, range.end);
    if (event && event.target && range) {
      state.lastMoved = event.target.id;
      updatePreview();
    }
    scheduleRecorded();
  }

  function showSpan(range) {
    if (!range) {
      say("span-label", "");
      return;
    }
    const spanS = (range.end - range.start) / 1000;
    const over = spanS > state.maxSpanS;
    $("span-label").textContent = `${formatSpan(spanS)} chosen; at most `
      + `${formatSpan(state.maxSpanS)} per export`;
    $("span-label").classList.toggle("error", over);
  }

  /** A handle moved on the timeline: the text fields and the preview follow. */
  function onHandleMove(start, end, which, done) {
    $("start").value = formatField(start);
    $("end").value = formatField(end);
    for (const id of ["start", "end"]) {
      $(id).removeAttribute("aria-invalid");
      $(`${id}-other`).textContent = otherZone(parseField($(id).value));
    }
    showSpan({ start, end });
    state.lastMoved = which;
    updatePreview();
    if (done) scheduleRecorded();
  }

  function updatePreview() {
    const device = state.devices.find((d) => d.id === state.previewId);
    const range = currentRange();
    state.rangePlayer.stop();
    state.masks.setCamera(device ? device.id : "", device ? device.name : "");
    $("play").disabled = !device || !range;
    if (!device || !range) {
      state.preview.show("", "", NaN, "");
      return;
    }
    const which = state.lastMoved === "end" ? "end" : "start";
    state.preview.show(device.id, device.name, range[which], which === "end" ? "End" : "Start");
  }

  function onLane(id) {
    state.previewId = id;
    state.timeline.setActive(id);
    updatePreview();
  }

  /* ---- timeline lanes: recorded intervals of the ticked cameras in the visible window ---- */

  function onView(from, to) {
    $("timeline").dataset.view = `${from}-${to}`;
    $("view-label").textContent = `${formatField(from).slice(0, 16)} – `
      + `${formatField(to).slice(0, 16)}`;
    scheduleLanes(200);
  }

  function scheduleLanes(delayMs) {
    clearTimeout(state.lanesTimer);
    state.lanesTimer = setTimeout(loadLanes, delayMs);
  }

  async function loadLanes() {
    const { from, to } = state.timeline;
    await Promise.all(Cameras.selectedDevices().map(async (d) => {
      try {
        const root = await guarded(Api.command("getRecordings", {
          deviceid: d.id, starttime: formatUtc(from), endtime: formatUtc(to) }));
        state.timeline.setIntervals(d.id, Api.findAll(root, "recordings/intervals/interval")
          .map((i) => [parseUtc(Api.textOf(i, "starttime")), parseUtc(Api.textOf(i, "endtime"))]));
      } catch (err) {
        state.timeline.setIntervals(d.id, []);
      }
    }));
    // For tests and screenshots: the lanes now show this window.
    $("timeline").dataset.loaded = `${from}-${to}`;
  }

  /** The last hour or day, up to now (never beyond: nothing is recorded in the future). */
  function zoomLast(spanMs) {
    const end = Date.now();
    state.timeline.setView(end - spanMs, end);
  }

  /** Play the chosen range of the camera whose picture is shown (its name clicked last). */
  function onPlay() {
    const device = state.devices.find((d) => d.id === state.previewId);
    const range = currentRange();
    if (device && range) state.rangePlayer.play(device, range);
  }

  /** The fields' zone changed: the same instants, written in the other zone. */
  function onZone() {
    const range = currentRange();
    TimeUtil.setZone($("zone").value);
    localStorage.setItem(ZONE_KEY, TimeUtil.getZone());
    showZone();
    Cameras.setPlaceholders();
    Cameras.renderCameraInfo();
    if (range) setRange(range.start, range.end);
    state.timeline.render();
    onView(state.timeline.from, state.timeline.to);
  }

  function showZone() {
    const utc = TimeUtil.getZone() === "utc";
    $("zone").value = TimeUtil.getZone();
    $("start-label").textContent = utc ? "Start (UTC)" : "Start (local time)";
    $("end-label").textContent = utc ? "End (UTC)" : "End (local time)";
    const name = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    $("zone-name").textContent = utc ? "" : name;
  }

  function scheduleRecorded() {
    clearTimeout(state.recordedTimer);
    state.recordedTimer = setTimeout(showRecorded, 250);
  }

  /** Per ticked camera: how much of the chosen range is recorded, and its gaps. */
  async function showRecorded() {
    const range = currentRange();
    const rows = await Promise.all(Cameras.selectedDevices().map(async (d) => {
      if (!range) return el("li", { text: `${d.name}: choose a valid range` });
      try {
        const root = await guarded(Api.command("getRecordings", {
          deviceid: d.id, starttime: formatUtc(range.start), endtime: formatUtc(range.end) }));
        const covered = Api.findAll(root, "recordings/intervals/interval").reduce((sum, i) =>
          sum + Math.min(parseUtc(Api.textOf(i, "endtime")), range.end)
              - Math.max(parseUtc(Api.textOf(i, "starttime")), range.start), 0);
        // Gaps under 1 ms are the wire's truncated microseconds, not holes in the recording.
        const gaps = Api.findAll(root, "recordings/gaps/gap").map((g) =>
          parseUtc(Api.textOf(g, "endtime")) - parseUtc(Api.textOf(g, "starttime")))
          .filter((ms) => ms >= 1);
        const gapText = gaps.length ? `, ${gaps.length} gap${gaps.length > 1 ? "s" : ""} `
          + `(${formatSpan(gaps.reduce((a, b) => a + b, 0) / 1000)})` : ", no gaps";
        return el("li", { text: covered > 0 ? `${d.name}: ${formatSpan(covered / 1000)} recorded`
          + gapText : `${d.name}: nothing recorded in the chosen range` });
      } catch (err) {
        return el("li", { text: `${d.name}: ${err.message}` });
      }
    }));
    $("recorded").replaceChildren(...(rows.length ? [el("ul", {}, ...rows)] : []));
  }

  return { init, currentRange, fillLastRecorded, onTimeInput, onHandleMove, updatePreview,
           onLane, onView, scheduleLanes, zoomLast, onPlay, onZone, showZone, scheduleRecorded };
})();
