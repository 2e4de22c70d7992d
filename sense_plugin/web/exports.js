/* The exports as the page follows them: the cards of the exports started here (under the
   form) and the paged, filtered history; actions (cancel/delete with confirmation, retry, stop).

   Quiet by design: an export is asked about again only while it is unfinished. Once a second,
   while anything shown is unfinished, one request lists the unfinished exports; one that has
   left that list is asked for once more (its final state), and never again. Nothing is polled
   while everything shown has finished. */
"use strict";

const Exports = (() => {
  const PAGE_SIZE = 10;
  /** With a camera or text filter the newest this many exports are searched in the page. */
  const SEARCH_SIZE = 500;
  const CURRENT_KEY = "sense.current";
  const UNFINISHED = "PENDING,SYNCING";
  const NOT_DELETED = "PENDING,SYNCING,COMPLETED,FAILED,EXPIRED";
  const el = ExportView.el;
  const $ = (id) => document.getElementById(id);
  const view = { offset: 0, confirming: "", lastHistory: "", lastCurrent: "", rows: [],
                 hasOlder: false, polling: false, acting: new Set(),
                 pressed: false, heldBack: false };
  /** Export id → its latest <export> element (cards and history rows render from here). */
  const known = new Map();
  /** From the page: ``guarded(promise)``, ``say(id, text)``, ``showing(view)``, ``play(file)``. */
  let hooks = null;

  function init(pageHooks) {
    hooks = pageHooks;
    for (const id of ["filter-camera", "filter-status", "filter-text"]) {
      $(id).addEventListener("input", () => { view.offset = 0; refreshHistory(true); });
    }
    $("history-filter").addEventListener("submit", (event) => event.preventDefault());
    // No redraw under a pressed pointer: a row leaving or a button replaced between the press
    // and the release moves the release off the button, and the click is lost. The redraw held
    // back runs after the release and its click.
    document.addEventListener("pointerdown", () => { view.pressed = true; }, true);
    for (const [target, type] of [[document, "pointerup"], [document, "pointercancel"],
                                  [window, "blur"]]) {
      target.addEventListener(type, () => {
        view.pressed = false;
        if (view.heldBack) setTimeout(redrawHeldBack, 0);
      }, true);
    }
  }

  /** True while a pointer is pressed; what is not drawn now is drawn after its release
      (meanwhile the history says it is out of date: ``aria-busy``). */
  function held() {
    if (!view.pressed) return false;
    view.heldBack = true;
    $("history-rows").setAttribute("aria-busy", "true");
    return true;
  }

  function redrawHeldBack() {
    view.heldBack = false;
    $("history-rows").removeAttribute("aria-busy");
    redrawFromKnown();
  }

  /** Back to the newest page (after a new export). */
  function firstPage() {
    view.offset = 0;
  }

  const statusOf = (exp) => Api.textOf(exp, "status");
  const isFinal = (exp) => ExportView.FINAL.has(statusOf(exp));

  /** Once a second: follow what is unfinished, ask nothing otherwise. */
  async function poll() {
    const shown = new Set([...current(), ...view.rows]);
    const open = [...shown].filter((id) => known.has(id) && !isFinal(known.get(id)));
    if (!open.length || view.polling) return;
    view.polling = true;
    try {
      const root = await hooks.guarded(Api.command("getExportVideoStatus", { status: UNFINISHED }));
      const still = new Set();
      for (const exp of Api.findAll(root, "exports/export")) {
        const id = Api.textOf(exp, "exportid");
        still.add(id);
        known.set(id, exp);
      }
      const ended = open.filter((id) => !still.has(id));
      await Promise.all(ended.map(fetchOne));  // the final state, asked once
      if (ended.length && hooks.showing("history")) await refreshHistory(true);
      else redrawFromKnown();
    } catch (err) {
      /* the next tick tries again */
    } finally {
      view.polling = false;
    }
  }

  async function fetchOne(id) {
    try {
      const root = await hooks.guarded(Api.command("getExportVideoStatus", { exportid: id }));
      const exp = Api.find(root, "exports/export");
      if (exp) known.set(id, exp);
    } catch (err) {
      known.delete(id);
    }
  }

  /* ---- the exports started here, shown under the form ---- */

  function current() {
    try {
      return JSON.parse(sessionStorage.getItem(CURRENT_KEY) || "[]");
    } catch (err) {
      return [];
    }
  }

  function remember(exportId) {
    const ids = [exportId, ...current().filter((id) => id !== exportId)].slice(0, 3);
    sessionStorage.setItem(CURRENT_KEY, JSON.stringify(ids));
  }

  /** Cards of the exports started here; each is fetched once unless already known. */
  async function refreshCurrent() {
    if (!hooks.showing("export")) return;
    await Promise.all(current().filter((id) => !known.has(id)).map(fetchOne));
    renderCurrent();
  }

  function renderCurrent() {
    if (held()) return;
    const exports = current().map((id) => known.get(id)).filter(Boolean);
    const key = exports.map(drawKey).join("");
    if (key === view.lastCurrent) return;
    view.lastCurrent = key;
    keepFocus(() => ListPatch.patch($("current"), exports, drawKey, (e) => ExportView.card(e, actions)));
  }

  /** What one row or card is drawn from: the export, its question, its action in flight. */
  function drawKey(exp) {
    const id = Api.textOf(exp, "exportid");
    return new XMLSerializer().serializeToString(exp) + minuteOf([exp])
      + (view.confirming === id ? "?" : "") + (view.acting.has(id) ? "…" : "");
  }

  /** Live exports show how long they have run: redraw them when the shown second changes. */
  function minuteOf(exports) {
    return exports.some((e) => Api.textOf(e, "mode") === "live" && !isFinal(e))
      ? String(Math.floor(Date.now() / 1000)) : "";
  }

  function redrawFromKnown() {
    renderCurrent();
    if (hooks.showing("history")) {
      const exports = view.rows.map((id) => known.get(id)).filter(Boolean);
      renderIfChanged(exports, view.hasOlder, false);
    }
  }

  /* ---- history ---- */

  const actions = {
    get confirming() { return view.confirming; },
    busy: (exportId) => view.acting.has(exportId),
    async ask(exportId) {
      view.confirming = exportId;
      redrawFromKnown();
      const where = $("history-view").hidden ? "card-" : "";
      const yes = document.querySelector(`[data-key="${where}confirm-${CSS.escape(exportId)}"]`);
      if (yes) yes.focus();
    },
    act,
    play: (file) => hooks.play(file),
  };

  function filters() {
    return { camera: $("filter-camera").value, status: $("filter-status").value || NOT_DELETED,
             text: $("filter-text").value.trim().toLowerCase() };
  }

  /** The cameras of the filter: every camera of the server (set once the list is loaded). */
  function setCameras(devices) {
    const chosen = $("filter-camera").value;
    $("filter-camera").replaceChildren(el("option", { value: "", text: "all cameras" }),
      ...devices.map((d) => el("option", { value: d.id, text: d.name })));
    $("filter-camera").value = chosen;
  }

  function matches(exp, f) {
    if (f.camera && !Api.findAll(exp, "devices/device/deviceid")
      .some((d) => d.textContent.trim() === f.camera)) return false;
    if (!f.text) return true;
    return [Api.textOf(exp, "name"), Api.textOf(exp, "path")]
      .some((v) => v.toLowerCase().includes(f.text));
  }

  /** The history page: one request (with a camera or text filter: one search request). */
  async function refreshHistory(force = false) {
    if (!hooks.showing("history")) return;
    const f = filters();
    const searching = Boolean(f.camera || f.text);
    let root;
    try {
      // One more than a page tells whether an older page exists.
      root = await hooks.guarded(Api.command("getExportVideoStatus", searching
        ? { status: f.status, limit: SEARCH_SIZE, offset: 0 }
        : { status: f.status, limit: PAGE_SIZE + 1, offset: view.offset }));
    } catch (err) {
      hooks.say("history-error", `Cannot load the history: ${err.message}`);
      return;
    }
    hooks.say("history-error", "");
    let exports = Api.findAll(root, "exports/export");
    for (const exp of exports) known.set(Api.textOf(exp, "exportid"), exp);
    if (searching) {
      const found = exports.filter((e) => matches(e, f));
      $("history-searched").hidden = false;
      $("history-searched").textContent = `${found.length} found among the newest `
        + `${exports.length} exports.`;
      exports = found.slice(view.offset, view.offset + PAGE_SIZE + 1);
    } else {
      $("history-searched").hidden = true;
    }
    if (!exports.length && view.offset > 0) {
      view.offset = Math.max(0, view.offset - PAGE_SIZE);
      refreshHistory(true);
      return;
    }
    view.rows = exports.slice(0, PAGE_SIZE).map((e) => Api.textOf(e, "exportid"));
    view.hasOlder = exports.length > PAGE_SIZE;
    renderIfChanged(exports.slice(0, PAGE_SIZE), view.hasOlder, force);
  }

  function renderIfChanged(exports, hasOlder, force) {
    if (held()) return;
    const snapshot = exports.map(drawKey).join("") + view.offset;
    if (!force && snapshot === view.lastHistory) return;
    view.lastHistory = snapshot;
    keepFocus(() => renderHistory(exports, hasOlder));
  }

  /** Re-render without losing the keyboard focus (elements carry a stable ``data-key``). */
  function keepFocus(render) {
    const active = document.activeElement;
    const key = active && active.dataset ? active.dataset.key : undefined;
    render();
    if (key && document.activeElement !== active) {
      const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  }

  function renderHistory(exports, hasOlder) {
    const filtered = Boolean($("filter-camera").value || $("filter-text").value.trim()
                            || $("filter-status").value);
    ListPatch.patch($("history-rows"), exports, drawKey, (e) => ExportView.row(e, actions));
    $("history-empty").hidden = exports.length > 0 || view.offset > 0;
    $("history-empty").textContent = filtered ? "No export matches." : "No exports yet.";
    $("history").hidden = exports.length === 0 && view.offset === 0;
    $("page-prev").disabled = view.offset === 0;
    $("page-next").disabled = !hasOlder;
    $("page-label").textContent = `Page ${view.offset / PAGE_SIZE + 1}`;
  }

  async function act(exportId, action) {
    hooks.say("history-error", "");
    view.confirming = "";
    // Redraw now (the question goes, the export shows it is busy), not at some later refresh:
    // a removal waits until the job has settled, and the page must not shift meanwhile.
    view.acting.add(exportId);
    redrawFromKnown();
    const verb = { remove: "Removal", retry: "Retry", stop: "Stop" }[action] || action;
    try {
      const root = await hooks.guarded(Api.command("exportVideo", { action, exportid: exportId }));
      if (action === "retry") {
        remember(Api.textOf(root, "exportid"));
        view.offset = 0;
      }
    } catch (err) {
      const message = `${verb} of export ${exportId} failed: ${err.message}`;
      hooks.say("history-error", message);
      hooks.say("export-message", "");
      $("export-error").replaceChildren(el("p", { text: message }));
    }
    await fetchOne(exportId);  // its new state, once; unfinished ones are polled from here on
    view.acting.delete(exportId);
    view.lastCurrent = "";
    await Promise.all([refreshHistory(true), refreshCurrent()]);
  }

  function page(delta) {
    view.offset = Math.max(0, view.offset + delta * PAGE_SIZE);
    refreshHistory(true);
  }

  return { init, remember, refreshCurrent, refreshHistory, poll, page, firstPage, setCameras };
})();
