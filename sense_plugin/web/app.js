/* The export page: log in, tick cameras, choose a range on the timeline, watch, download. */
"use strict";

const POLL_MS = 1000;
const LANES_REFRESH_MS = 10000;
/** The server's default export.max_span_s, until getServerOptions says otherwise. */
const DEFAULT_MAX_SPAN_S = 86400;
const USER_KEY = "sense.user";
const ZONE_KEY = "sense.zone";
const { parseUtc, formatUtc, formatField, parseField, otherZone, formatSpan } = TimeUtil;
const el = ExportView.el;

const $ = (id) => document.getElementById(id);
const state = {
  devices: [], maxSpanS: DEFAULT_MAX_SPAN_S, started: false,
  pollTimer: null, recordedTimer: null, lanesTimer: null, lanesRefresh: null,
  lastMoved: "start", previewId: "", timeline: null, preview: null, masks: null,
  rangePlayer: null, filePlayer: null,
};

function say(id, text) {
  $(id).textContent = text || "";
}

/* ---- views ---- */

function show(view) {
  for (const name of ["login", "export", "history"]) {
    $(`${name}-view`).hidden = name !== view;
  }
  $("loading").hidden = true;
  $("nav").hidden = view === "login";
  $("nav-export").setAttribute("aria-current", view === "export" ? "page" : "false");
  $("nav-history").setAttribute("aria-current", view === "history" ? "page" : "false");
  document.title = { login: "Log in", export: "New export", history: "Export history" }[view]
    + " – Video export";
  if (view === "history") Exports.refreshHistory(true);
  if (view === "export" && state.timeline) {
    state.timeline.render();
    Exports.refreshCurrent();
  }
}

function route() {
  if (!state.started) return;
  show(location.hash === "#history" ? "history" : "export");
}

function needLogin(message, calm = false) {
  state.started = false;
  stopPolling();
  state.rangePlayer.stop();
  state.filePlayer.close();
  sessionStorage.removeItem(USER_KEY);
  say("whoami", "");
  $("sign-out").hidden = true;
  say("login-error", message || "");
  $("login-error").classList.toggle("calm", calm);
  show("login");
  $("login-user").focus();
}

/** Run an API call; a 401 anywhere sends the user back to the login form. */
async function guarded(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof Api.ApiError && err.authRequired && state.started) {
      needLogin("Your session has ended. Please log in again.");
    }
    throw err;
  }
}

/* ---- start-up and login ---- */

async function boot() {
  try {
    await loadDevices();
  } catch (err) {
    if (err instanceof Api.ApiError && err.authRequired) {
      needLogin("");
      return;
    }
    $("loading").textContent = `Cannot load cameras: ${err.message}`;
    return;
  }
  state.started = true;
  const user = sessionStorage.getItem(USER_KEY);
  say("whoami", user ? `Signed in as ${user}` : "");
  $("sign-out").hidden = !user;  // with authentication off nobody signs in
  startPolling();
  route();
}

/** Sign out: the server ends the session (and clears its cookie); back to the login form. */
async function onSignOut() {
  $("sign-out").disabled = true;
  try {
    await Api.command("logout");
    needLogin("You have signed out.", true);
  } catch (err) {
    if (err instanceof Api.ApiError && err.authRequired) needLogin("You have signed out.", true);
    else say("whoami", `Signing out failed: ${err.message}`);
  } finally {
    $("sign-out").disabled = false;
  }
}

async function onLogin(event) {
  event.preventDefault();
  const username = $("login-user").value.trim();
  say("login-error", "");
  $("login-submit").disabled = true;
  try {
    await Api.login(username, $("login-password").value);
    sessionStorage.setItem(USER_KEY, username);
    $("login-password").value = "";
    await boot();
  } catch (err) {
    say("login-error", `Login failed: ${err.message}`);
    $("login-password").value = "";
    $("login-password").focus();
  } finally {
    $("login-submit").disabled = false;
  }
}

/* ---- cameras ---- */

async function loadDevices() {
  const [list, status, options] = await Promise.all([
    Api.command("getDeviceList"), Api.command("getServerStatus"),
    Api.command("getServerOptions"),
  ]);
  const maxSpan = parseInt(Api.textOf(options, "serveroptions/maxspan"), 10);
  if (maxSpan > 0) state.maxSpanS = maxSpan;
  const ranges = recordedRanges(status);
  state.devices = Api.findAll(list, "devices/device").map((d) => {
    const id = Api.textOf(d, "deviceid");
    return { id, name: Api.textOf(d, "name"), status: Api.textOf(d, "status"),
             ...(ranges.get(id) || { first: NaN, last: NaN }) };
  });
  renderCameras();
  Exports.setCameras(state.devices);
  setPlaceholders();
  state.timeline.setMaxSpan(state.maxSpanS * 1000);
}

function recordedRanges(status) {
  return new Map(Api.findAll(status, "serverstatus/devices/device").map((d) => [
    Api.textOf(d, "deviceid"),
    { first: parseUtc(Api.textOf(d, "firstrecordedimage")),
      last: parseUtc(Api.textOf(d, "lastrecordedimage")) },
  ]));
}

/** The archive grows (live recording): fetch every camera's recorded range again. */
async function refreshRanges() {
  const ranges = recordedRanges(await guarded(Api.command("getServerStatus")));
  for (const d of state.devices) Object.assign(d, ranges.get(d.id) || {});
  renderCameraInfo();
}

function renderCameras() {
  const checked = new Set(selectedIds());
  const items = state.devices.map((d) => {
    const disabled = d.status === "disabled";
    return el("li", {},
      el("input", { type: "checkbox", id: `cam-${d.id}`, value: d.id, name: "camera",
                    checked: checked.has(d.id), disabled, "aria-describedby": `cam-${d.id}-info`,
                    onchange: onSelectionChange }),
      el("label", { for: `cam-${d.id}`, text: d.name }),
      el("span", { id: `cam-${d.id}-info`, className: "muted cam-info" }));
  });
  $("cameras").replaceChildren(...items);
  if (!items.length) $("cameras").append(el("li", { className: "muted", text: "No cameras." }));
  renderCameraInfo();
}

function renderCameraInfo() {
  for (const d of state.devices) {
    const info = $(`cam-${d.id}-info`);
    if (!info) continue;
    info.textContent = d.status === "disabled" ? "disabled"
      : Number.isFinite(d.first) ? recordedText(d.first, d.last) : "nothing recorded";
  }
}

/** "2026-12-02 03:54:04 – 03:55:04" (the date once when both ends share it). */
function recordedText(first, last) {
  const [a, b] = [formatField(first).slice(0, 19), formatField(last).slice(0, 19)];
  return `${a} – ${a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b}`;
}

/** Placeholders inside the archive: the last recorded minute of the newest camera. */
function setPlaceholders() {
  const lasts = state.devices.filter((d) => Number.isFinite(d.last)).map((d) => d.last);
  if (!lasts.length) return;
  const end = Math.max(...lasts);
  $("start").placeholder = formatField(end - 60000);
  $("end").placeholder = formatField(end);
}

function selectedIds() {
  return Array.from(document.querySelectorAll("#cameras input:checked"), (i) => i.value);
}

function selectedDevices() {
  const ids = new Set(selectedIds());
  return state.devices.filter((d) => ids.has(d.id));
}

function onSelectionChange() {
  const devices = selectedDevices();
  const none = devices.length === 0;
  $("start-export").disabled = none;
  $("start-hint").hidden = !none;
  $("cameras-box").classList.remove("invalid");
  if (!devices.some((d) => d.id === state.previewId)) {
    state.previewId = devices.length ? devices[0].id : "";
  }
  state.timeline.setLanes(devices.map((d) => ({ id: d.id, name: d.name })));
  state.timeline.setActive(state.previewId);
  const range = currentRange();
  if (!none && !range) fillLastRecorded(60);
  else scheduleLanes(0);
  scheduleRecorded();
  updatePreview();
}

/* ---- the range: text fields, timeline handles, quick buttons ---- */

function currentRange() {
  const start = parseField($("start").value);
  const end = parseField($("end").value);
  return start < end ? { start, end } : null;
}

/** The last ``seconds`` recorded by every ticked camera (to the millisecond, never before the
    earliest recording, so a short archive is not reported with a false gap). */
async function fillLastRecorded(seconds) {
  try {
    await refreshRanges();
  } catch (err) {
    /* keep the ranges loaded at start */
  }
  const devices = selectedDevices().filter((d) => Number.isFinite(d.last));
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
  await Promise.all(selectedDevices().map(async (d) => {
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
  setPlaceholders();
  renderCameraInfo();
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
  const rows = await Promise.all(selectedDevices().map(async (d) => {
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

async function onStartExport(event) {
  event.preventDefault();
  say("export-message", "");
  const problems = ExportForm.check(selectedIds(), state.maxSpanS);
  ExportForm.showProblems(problems);
  if (problems.length) return;
  $("start-export").disabled = true;
  try {
    const root = await guarded(Api.command("exportVideo", {},
      ExportForm.build(selectedIds(), state.masks.byCamera())));
    const exportId = Api.textOf(root, "exportid");
    Exports.remember(exportId);
    say("export-message", `Export #${exportId} started; its progress is shown below.`);
    Exports.firstPage();
    await Exports.refreshCurrent();
    $("current").scrollIntoView({ block: "nearest" });
  } catch (err) {
    $("export-error").replaceChildren(el("p", {
      text: `The server refused the export: ${err.message}` }));
  } finally {
    $("start-export").disabled = selectedIds().length === 0;
  }
}

/* ---- polling ---- */

function startPolling() {
  stopPolling();
  state.pollTimer = setInterval(Exports.poll, POLL_MS);
  // Recordings grow while cameras record: redraw the lanes now and then.
  state.lanesRefresh = setInterval(() => {
    if (!$("export-view").hidden && selectedIds().length) scheduleLanes(0);
  }, LANES_REFRESH_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  clearInterval(state.lanesRefresh);
  state.pollTimer = null;
}

function wireTimeline() {
  state.timeline = new Timeline.Timeline($("timeline"),
    { onMove: onHandleMove, onView, onLane });
  state.preview = new Preview.Preview($("preview-img"), $("preview-caption"), $("preview-note"));
  const frame = document.querySelector(".preview-frame");
  state.masks = new Masks.Masks(frame, $("preview-img"), $("mask-list"), $("mask-draw"),
                                $("mask-style"), $("mask-camera"));
  state.rangePlayer = new Player.RangePlayer(frame, $("preview-img"), $("preview-video"),
                                             $("play-time"), $("play-stop"));
  state.filePlayer = new Player.FilePlayer($("player"), $("player-title"), $("player-video"),
                                           $("player-time"), $("player-close"));
  $("play").addEventListener("click", onPlay);
  const tl = state.timeline;
  $("zoom-hour").addEventListener("click", () => zoomLast(Timeline.HOUR));
  $("zoom-day").addEventListener("click", () => zoomLast(Timeline.DAY));
  $("zoom-fit").addEventListener("click", () => tl.fit());
  $("zoom-in").addEventListener("click", () => tl.zoom(0.5));
  $("zoom-out").addEventListener("click", () => tl.zoom(2));
  $("pan-left").addEventListener("click", () => tl.pan(-0.5));
  $("pan-right").addEventListener("click", () => tl.pan(0.5));
  tl.setView(Date.now() - Timeline.HOUR, Date.now() + Timeline.MINUTE);
}

document.addEventListener("DOMContentLoaded", () => {
  TimeUtil.setZone(localStorage.getItem(ZONE_KEY) || "local");
  Exports.init({ guarded, say, showing: (view) => state.started && !$(`${view}-view`).hidden,
                 play: (file) => state.filePlayer.open(file) });
  wireTimeline();
  showZone();
  $("zone").addEventListener("change", onZone);
  $("sign-out").addEventListener("click", onSignOut);
  $("login-form").addEventListener("submit", onLogin);
  $("export-form").addEventListener("submit", onStartExport);
  $("start").addEventListener("input", onTimeInput);
  $("end").addEventListener("input", onTimeInput);
  $("export-form").addEventListener("input", ExportForm.onInput);
  $("output").addEventListener("change", ExportForm.syncKind);
  $("mode").addEventListener("change", ExportForm.syncKind);
  $("last-minute").addEventListener("click", () => fillLastRecorded(60));
  $("last-ten").addEventListener("click", () => fillLastRecorded(600));
  $("page-prev").addEventListener("click", () => Exports.page(-1));
  $("page-next").addEventListener("click", () => Exports.page(1));
  window.addEventListener("hashchange", route);
  boot();
});
