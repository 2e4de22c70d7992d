/* The export page: log in, choose cameras and a range, start, watch, download. */
"use strict";

const PAGE_SIZE = 10;
const POLL_MS = 1000;
/** The server's default export.max_span_s; the server refuses longer spans anyway. */
const DEFAULT_MAX_SPAN_S = 86400;
const TRACK_KEY = "sense.autodownload";
const USER_KEY = "sense.user";
const FINAL = new Set(["COMPLETED", "FAILED", "REMOVED", "EXPIRED"]);

const $ = (id) => document.getElementById(id);
const state = {
  devices: [], maxSpanS: DEFAULT_MAX_SPAN_S, offset: 0, lastHistory: "", started: false,
  pollTimer: null, recordedTimer: null,
};

/* ---- time: the wire form is UTC "YYYY-MM-DD HH:MM:SS[.zzz]" ---- */

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|\+00:00)?$/;

function parseUtc(text) {
  const m = TIME_RE.exec(text.trim());
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map((v) => parseInt(v || "0", 10));
  const ms = Date.UTC(y, mo - 1, d, h, mi, s) + Math.floor(parseFloat(m[7] || "0") * 1000);
  const check = new Date(ms);
  // Date.UTC rolls impossible dates over (Feb 30 → Mar 2): refuse them like the server does.
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1 || h > 23 || mi > 59 || s > 59) {
    return NaN;
  }
  return ms;
}

function formatUtc(ms) {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

function formatLocal(ms) {
  return new Date(ms).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
}

function shortWire(text) {
  return text ? text.slice(0, 19) : "–";
}

function formatSpan(seconds) {
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  return `${(s / 3600).toFixed(1)} h`;
}

/* ---- small DOM helpers ---- */

function el(tag, attrs = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...kids.filter((k) => k !== null && k !== undefined));
  return node;
}

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
  if (view === "history") refreshHistory(true);
}

function route() {
  if (!state.started) return;
  show(location.hash === "#history" ? "history" : "export");
}

function needLogin(message) {
  state.started = false;
  stopPolling();
  sessionStorage.removeItem(USER_KEY);
  say("whoami", "");
  say("login-error", message || "");
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
  startPolling();
  route();
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

/* ---- export page ---- */

async function loadDevices() {
  const [list, status] = await Promise.all([
    Api.command("getDeviceList"), Api.command("getServerStatus"),
  ]);
  const ranges = new Map(Api.findAll(status, "serverstatus/devices/device").map((d) => [
    Api.textOf(d, "deviceid"),
    { first: Api.textOf(d, "firstrecordedimage"), last: Api.textOf(d, "lastrecordedimage") },
  ]));
  state.devices = Api.findAll(list, "devices/device").map((d) => {
    const id = Api.textOf(d, "deviceid");
    return { id, name: Api.textOf(d, "name"), status: Api.textOf(d, "status"),
             ...(ranges.get(id) || { first: "", last: "" }) };
  });
  renderCameras();
}

function renderCameras() {
  const checked = new Set(selectedIds());
  const items = state.devices.map((d) => {
    const disabled = d.status === "disabled";
    const range = d.first ? `recorded ${shortWire(d.first)} – ${shortWire(d.last)} UTC`
      : "nothing recorded";
    return el("li", {},
      el("input", { type: "checkbox", id: `cam-${d.id}`, value: d.id, name: "camera",
                    checked: checked.has(d.id), disabled, "aria-describedby": `cam-${d.id}-info`,
                    onchange: onSelectionChange }),
      el("label", { for: `cam-${d.id}`, text: d.name }),
      el("span", { id: `cam-${d.id}-info`, className: "muted",
                   text: disabled ? "disabled" : range }));
  });
  $("cameras").replaceChildren(...items);
  if (!items.length) $("cameras").append(el("li", { className: "muted", text: "No cameras." }));
}

function selectedIds() {
  return Array.from(document.querySelectorAll("#cameras input:checked"), (i) => i.value);
}

function selectedDevices() {
  const ids = new Set(selectedIds());
  return state.devices.filter((d) => ids.has(d.id));
}

function onSelectionChange() {
  const none = selectedIds().length === 0;
  $("start-export").disabled = none;
  $("start-hint").hidden = !none;
  if (!none && !$("start").value && !$("end").value) fillLastRecorded(60);
  scheduleRecorded();
}

/** Set the range to the last ``seconds`` recorded by every selected camera. */
function fillLastRecorded(seconds) {
  const lasts = selectedDevices().filter((d) => d.last).map((d) => parseUtc(d.last));
  if (!lasts.length) return;
  const endMs = Math.floor(Math.min(...lasts) / 1000) * 1000;
  $("start").value = formatUtc(endMs - seconds * 1000);
  $("end").value = formatUtc(endMs);
  onTimeInput();
}

function onTimeInput() {
  say("export-error", "");
  for (const id of ["start", "end"]) $(id).removeAttribute("aria-invalid");
  for (const id of ["start", "end"]) {
    const ms = parseUtc($(id).value);
    $(`${id}-local`).textContent = Number.isNaN(ms) ? ($(id).value ? "not a valid time" : "")
      : `local: ${formatLocal(ms)}`;
  }
  scheduleRecorded();
}

function scheduleRecorded() {
  clearTimeout(state.recordedTimer);
  state.recordedTimer = setTimeout(showRecorded, 250);
}

/** Per selected camera: its recorded range, and how much of the chosen range is recorded. */
async function showRecorded() {
  const devices = selectedDevices();
  const startMs = parseUtc($("start").value);
  const endMs = parseUtc($("end").value);
  const valid = !Number.isNaN(startMs) && !Number.isNaN(endMs) && startMs < endMs;
  const rows = await Promise.all(devices.map(async (d) => {
    let detail = "";
    if (valid) {
      try {
        const root = await guarded(Api.command("getRecordings", {
          deviceid: d.id, starttime: formatUtc(startMs), endtime: formatUtc(endMs) }));
        const covered = Api.findAll(root, "recordings/intervals/interval").reduce((sum, i) =>
          sum + Math.min(parseUtc(Api.textOf(i, "endtime")), endMs)
              - Math.max(parseUtc(Api.textOf(i, "starttime")), startMs), 0);
        const gaps = Api.findAll(root, "recordings/gaps/gap").length;
        detail = covered > 0
          ? `; in the chosen range ${formatSpan(covered / 1000)} recorded, ${gaps} gap(s)`
          : "; nothing recorded in the chosen range";
      } catch (err) {
        detail = `; ${err.message}`;
      }
    }
    const range = d.first ? `${shortWire(d.first)} – ${shortWire(d.last)} UTC` : "nothing";
    return el("li", { text: `${d.name}: recorded ${range}${detail}` });
  }));
  $("recorded").replaceChildren(...(rows.length
    ? [el("p", { text: "Recorded range of the selected cameras:" }), el("ul", {}, ...rows)] : []));
}

/** The reason the form cannot be sent, with the field to fix; null when it is fine. */
function checkForm() {
  const startMs = parseUtc($("start").value);
  const endMs = parseUtc($("end").value);
  if (!selectedIds().length) return ["Select at least one camera.", "cameras"];
  if (Number.isNaN(startMs)) return ["Start is not a UTC time like 2026-11-20 10:00:00.", "start"];
  if (Number.isNaN(endMs)) return ["End is not a UTC time like 2026-11-20 10:01:00.", "end"];
  if (endMs <= startMs) return ["End must be after start.", "end"];
  const spanS = (endMs - startMs) / 1000;
  if (spanS > state.maxSpanS) {
    return [`The range is ${formatSpan(spanS)}; one export may span at most `
      + `${formatSpan(state.maxSpanS)} (${state.maxSpanS} s).`, "end"];
  }
  if (endMs > Date.now()) return ["End is in the future.", "end"];
  return null;
}

function exportDocument() {
  const doc = Api.xmlDocument("export");
  const devices = Api.appendText(doc.documentElement, "devices", "");
  const start = formatUtc(parseUtc($("start").value));
  const end = formatUtc(parseUtc($("end").value));
  for (const id of selectedIds()) {
    const device = Api.appendText(devices, "device", "");
    Api.appendText(device, "deviceid", id);
    Api.appendText(device, "starttime", start);
    Api.appendText(device, "endtime", end);
  }
  Api.appendText(doc.documentElement, "format", $("format").value);
  for (const field of ["path", "name"]) {
    const value = $(field).value.trim();
    if (value) Api.appendText(doc.documentElement, field, value);
  }
  return doc;
}

async function onStartExport(event) {
  event.preventDefault();
  say("export-error", "");
  say("export-message", "");
  for (const id of ["start", "end"]) $(id).removeAttribute("aria-invalid");
  const problem = checkForm();
  if (problem) {
    const [message, field] = problem;
    say("export-error", message);
    if (field !== "cameras") $(field).setAttribute("aria-invalid", "true");
    return;
  }
  $("start-export").disabled = true;
  try {
    const root = await guarded(Api.command("exportVideo", {}, exportDocument()));
    const exportId = Api.textOf(root, "exportid");
    track(exportId);
    say("export-message", `Export ${exportId} started; its files download automatically when `
      + "it completes while this page is open.");
    state.offset = 0;
    poll();
  } catch (err) {
    say("export-error", `The server refused the export: ${err.message}`);
  } finally {
    $("start-export").disabled = selectedIds().length === 0;
  }
}

/* ---- auto-download of exports started here ---- */

function tracked() {
  try {
    return JSON.parse(sessionStorage.getItem(TRACK_KEY) || "[]");
  } catch (err) {
    return [];
  }
}

function track(exportId) {
  sessionStorage.setItem(TRACK_KEY, JSON.stringify([...new Set([...tracked(), exportId])]));
}

function untrack(exportId) {
  sessionStorage.setItem(TRACK_KEY, JSON.stringify(tracked().filter((id) => id !== exportId)));
}

async function pollTracked() {
  for (const exportId of tracked()) {
    let exp;
    try {
      const root = await guarded(Api.command("getExportVideoStatus", { exportid: exportId }));
      exp = Api.find(root, "exports/export");
    } catch (err) {
      if (err instanceof Api.ApiError && err.code === -57) untrack(exportId);
      continue;
    }
    const status = Api.textOf(exp, "status");
    if (!FINAL.has(status)) continue;
    untrack(exportId);
    if (status === "COMPLETED") downloadAll(exportId, fileNames(exp));
  }
}

function fileNames(exp) {
  return Api.findAll(exp, "devices/device/files/file").map((f) => Api.textOf(f, "name"));
}

function downloadAll(exportId, names) {
  names.forEach((name, i) => setTimeout(() => {
    const link = el("a", { href: Api.downloadUrl(exportId, name), download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  }, i * 400));
}

/* ---- history page ---- */

function historyVisible() {
  return state.started && !$("history-view").hidden;
}

async function refreshHistory(force = false) {
  if (!historyVisible()) return;
  let root;
  try {
    // One more than a page: tells whether an older page exists.
    root = await guarded(Api.command("getExportVideoStatus",
      { limit: PAGE_SIZE + 1, offset: state.offset }));
  } catch (err) {
    say("history-error", `Cannot load the history: ${err.message}`);
    return;
  }
  say("history-error", "");
  const exports = Api.findAll(root, "exports/export");
  if (!exports.length && state.offset > 0) {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    refreshHistory(true);
    return;
  }
  const snapshot = new XMLSerializer().serializeToString(root);
  if (!force && snapshot === state.lastHistory) return;
  state.lastHistory = snapshot;
  renderHistory(exports.slice(0, PAGE_SIZE), exports.length > PAGE_SIZE);
}

function renderHistory(exports, hasOlder) {
  const focusKey = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.key : undefined;
  $("history-rows").replaceChildren(...exports.map(historyRow));
  $("history-empty").hidden = exports.length > 0 || state.offset > 0;
  $("history").hidden = exports.length === 0 && state.offset === 0;
  $("page-prev").disabled = state.offset === 0;
  $("page-next").disabled = !hasOlder;
  $("page-label").textContent = `Page ${state.offset / PAGE_SIZE + 1}`;
  if (focusKey) {
    const again = document.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

function historyRow(exp) {
  const id = Api.textOf(exp, "exportid");
  const status = Api.textOf(exp, "status");
  const devices = Api.findAll(exp, "devices/device");
  const name = Api.textOf(exp, "name");
  const first = devices[0];
  const range = first ? `${shortWire(Api.textOf(first, "starttime"))} – `
    + `${shortWire(Api.textOf(first, "endtime")).slice(11)}` : "";
  return el("tr", { "data-exportid": id, "data-status": status },
    el("td", { "data-label": "Export" },
      el("strong", { text: `#${id}` }), name ? el("span", { text: ` ${name}` }) : null,
      el("div", { className: "muted", text: `${Api.textOf(exp, "format")} · ${range}` })),
    el("td", { "data-label": "Created", text: shortWire(Api.textOf(exp, "created")) }),
    el("td", { "data-label": "Cameras", className: "cameras-cell" },
      ...devices.map((d) => el("div", { text: Api.textOf(d, "name") }))),
    el("td", { "data-label": "Files", className: "files" },
      ...filesCell(id, status, exp)),
    el("td", { "data-label": "Status" }, ...statusCell(status, exp, devices)),
    el("td", { "data-label": "Actions", className: "actions" }, ...actionsCell(id, status, exp)));
}

function filesCell(id, status, exp) {
  const names = fileNames(exp);
  if (!names.length) return [el("span", { className: "muted", text: "–" })];
  return names.map((n) => status === "COMPLETED"
    ? el("div", {}, el("a", { href: Api.downloadUrl(id, n), download: n, text: n,
                              "data-key": `file-${id}-${n}` }))
    : el("div", { text: n }));
}

function statusCell(status, exp, devices) {
  const parts = [el("span", { className: `status status-${status.toLowerCase()}`, text: status })];
  if (status === "PENDING") parts.push(el("span", { className: "muted", text: " queued" }));
  if (status === "SYNCING") {
    const progress = Api.textOf(exp, "progress") || "0";
    parts.push(el("progress", { max: "100", value: progress,
                                "aria-label": `Progress of export ${Api.textOf(exp, "exportid")}` }),
               el("span", { className: "muted", text: ` ${progress} %` }));
  }
  for (const d of devices) {
    const description = Api.textOf(d, "description");
    if (description) {
      parts.push(el("div", { className: "error", text: `${Api.textOf(d, "name")}: ${description}` }));
    }
  }
  return parts;
}

function actionsCell(id, status, exp) {
  const buttons = [];
  if (status === "COMPLETED") {
    buttons.push(el("button", { type: "button", "data-key": `download-${id}`,
      "aria-label": `Download the files of export ${id}`, text: "Download",
      onclick: () => downloadAll(id, fileNames(exp)) }));
  }
  if (status === "PENDING" || status === "SYNCING") {
    buttons.push(el("button", { type: "button", "data-key": `cancel-${id}`,
      "aria-label": `Cancel export ${id}`, text: "Cancel",
      onclick: () => act(id, "remove") }));
  }
  if (status === "FAILED" || status === "REMOVED" || status === "EXPIRED") {
    buttons.push(el("button", { type: "button", "data-key": `retry-${id}`,
      "aria-label": `Retry export ${id}`, text: "Retry",
      onclick: () => act(id, "retry") }));
  }
  return buttons;
}

async function act(exportId, action) {
  say("history-error", "");
  try {
    const root = await guarded(Api.command("exportVideo", { action, exportid: exportId }));
    if (action === "retry") {
      const newId = Api.textOf(root, "exportid");
      track(newId);
      state.offset = 0;
    } else {
      untrack(exportId);
    }
  } catch (err) {
    say("history-error", `${action === "retry" ? "Retry" : "Cancel"} of export ${exportId} `
      + `failed: ${err.message}`);
  }
  refreshHistory(true);
}

/* ---- polling ---- */

async function poll() {
  await Promise.allSettled([pollTracked(), refreshHistory()]);
}

function startPolling() {
  stopPolling();
  state.pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

function page(delta) {
  state.offset = Math.max(0, state.offset + delta * PAGE_SIZE);
  refreshHistory(true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", onLogin);
  $("export-form").addEventListener("submit", onStartExport);
  $("start").addEventListener("input", onTimeInput);
  $("end").addEventListener("input", onTimeInput);
  $("last-minute").addEventListener("click", () => fillLastRecorded(60));
  $("last-ten").addEventListener("click", () => fillLastRecorded(600));
  $("page-prev").addEventListener("click", () => page(-1));
  $("page-next").addEventListener("click", () => page(1));
  window.addEventListener("hashchange", route);
  boot();
});
