/* The export page: log in, tick cameras, choose a range on the timeline, watch, download.
   This script holds the page's state, its views, the login and the export's start; the
   cameras (cameras.js) and the range (range.js) are scripts of their own, loaded before it. */
"use strict";

const POLL_MS = 1000;
const LANES_REFRESH_MS = 10000;
/** The server's default export.max_span_s, until getServerOptions says otherwise. */
const DEFAULT_MAX_SPAN_S = 86400;
const USER_KEY = "sense.user";
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
    await Cameras.loadDevices();
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

async function onStartExport(event) {
  event.preventDefault();
  say("export-message", "");
  const problems = ExportForm.check(Cameras.selectedIds(), state.maxSpanS);
  ExportForm.showProblems(problems);
  if (problems.length) return;
  $("start-export").disabled = true;
  try {
    const root = await guarded(Api.command("exportVideo", {},
      ExportForm.build(Cameras.selectedIds(), state.masks.byCamera())));
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
    $("start-export").disabled = Cameras.selectedIds().length === 0;
  }
}

/* ---- polling ---- */

function startPolling() {
  stopPolling();
  state.pollTimer = setInterval(Exports.poll, POLL_MS);
  // Recordings grow while cameras record: redraw the lanes now and then.
  state.lanesRefresh = setInterval(() => {
    if (!$("export-view").hidden && Cameras.selectedIds().length) RangePick.scheduleLanes(0);
  }, LANES_REFRESH_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  clearInterval(state.lanesRefresh);
  state.pollTimer = null;
}

function wireTimeline() {
  state.timeline = new Timeline.Timeline($("timeline"),
    { onMove: RangePick.onHandleMove, onView: RangePick.onView, onLane: RangePick.onLane });
  state.preview = new Preview.Preview($("preview-img"), $("preview-caption"), $("preview-note"));
  const frame = document.querySelector(".preview-frame");
  state.masks = new Masks.Masks(frame, $("preview-img"), $("mask-list"), $("mask-draw"),
                                $("mask-style"), $("mask-camera"));
  state.rangePlayer = new Player.RangePlayer(frame, $("preview-img"), $("preview-video"),
                                             $("play-time"), $("play-stop"));
  state.filePlayer = new Player.FilePlayer($("player"), $("player-title"), $("player-video"),
                                           $("player-time"), $("player-close"));
  $("play").addEventListener("click", RangePick.onPlay);
  const tl = state.timeline;
  $("zoom-hour").addEventListener("click", () => RangePick.zoomLast(Timeline.HOUR));
  $("zoom-day").addEventListener("click", () => RangePick.zoomLast(Timeline.DAY));
  $("zoom-fit").addEventListener("click", () => tl.fit());
  $("zoom-in").addEventListener("click", () => tl.zoom(0.5));
  $("zoom-out").addEventListener("click", () => tl.zoom(2));
  $("pan-left").addEventListener("click", () => tl.pan(-0.5));
  $("pan-right").addEventListener("click", () => tl.pan(0.5));
  tl.setView(Date.now() - Timeline.HOUR, Date.now() + Timeline.MINUTE);
}

document.addEventListener("DOMContentLoaded", () => {
  RangePick.init({ state, guarded });
  Cameras.init({ state, guarded });
  Exports.init({ guarded, say, showing: (view) => state.started && !$(`${view}-view`).hidden,
                 play: (file) => state.filePlayer.open(file) });
  wireTimeline();
  RangePick.showZone();
  $("zone").addEventListener("change", RangePick.onZone);
  $("sign-out").addEventListener("click", onSignOut);
  $("login-form").addEventListener("submit", onLogin);
  $("export-form").addEventListener("submit", onStartExport);
  $("start").addEventListener("input", RangePick.onTimeInput);
  $("end").addEventListener("input", RangePick.onTimeInput);
  $("export-form").addEventListener("input", ExportForm.onInput);
  $("output").addEventListener("change", ExportForm.syncKind);
  $("mode").addEventListener("change", ExportForm.syncKind);
  $("last-minute").addEventListener("click", () => RangePick.fillLastRecorded(60));
  $("last-ten").addEventListener("click", () => RangePick.fillLastRecorded(600));
  $("page-prev").addEventListener("click", () => Exports.page(-1));
  $("page-next").addEventListener("click", () => Exports.page(1));
  window.addEventListener("hashchange", route);
  boot();
});
