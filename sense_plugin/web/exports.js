/* The exports as the page follows them: the cards of the exports started here (under the
   form) and the paged history; actions (cancel/delete with confirmation, retry, stop). */
"use strict";

const Exports = (() => {
  const PAGE_SIZE = 10;
  const CURRENT_KEY = "sense.current";
  const el = ExportView.el;
  const $ = (id) => document.getElementById(id);
  const view = { offset: 0, lastHistory: "", confirming: "", lastCurrent: "" };
  /** From the page: ``guarded(promise)``, ``say(id, text)``, ``showing(view)``. */
  let hooks = null;

  function init(pageHooks) {
    hooks = pageHooks;
  }

  /** Back to the newest page (after a new export). */
  function firstPage() {
    view.offset = 0;
  }

  async function poll() {
    await Promise.allSettled([refreshCurrent(), refreshHistory()]);
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

  async function refreshCurrent() {
    if (!hooks.showing("export")) return;
    const found = await Promise.all(current().map(async (id) => {
      try {
        const root = await hooks.guarded(Api.command("getExportVideoStatus", { exportid: id }));
        return Api.find(root, "exports/export");
      } catch (err) {
        return null;
      }
    }));
    const exports = found.filter(Boolean);
    const key = exports.map((e) => new XMLSerializer().serializeToString(e)).join("")
      + view.confirming;
    if (key === view.lastCurrent) return;
    view.lastCurrent = key;
    keepFocus(() => $("current").replaceChildren(
      ...exports.map((e) => ExportView.card(e, actions))));
  }

  /* ---- history ---- */

  const actions = {
    get confirming() { return view.confirming; },
    async ask(exportId) {
      view.confirming = exportId;
      await redraw();
      const where = $("history-view").hidden ? "card-" : "";
      const yes = document.querySelector(`[data-key="${where}confirm-${CSS.escape(exportId)}"]`);
      if (yes) yes.focus();
    },
    act,
  };

  function redraw() {
    view.lastHistory = "";
    view.lastCurrent = "";
    return Promise.all([refreshHistory(true), refreshCurrent()]);
  }

  async function refreshHistory(force = false) {
    if (!hooks.showing("history")) return;
    let root;
    try {
      // One more than a page: tells whether an older page exists.
      root = await hooks.guarded(Api.command("getExportVideoStatus",
        { limit: PAGE_SIZE + 1, offset: view.offset }));
    } catch (err) {
      hooks.say("history-error", `Cannot load the history: ${err.message}`);
      return;
    }
    hooks.say("history-error", "");
    const exports = Api.findAll(root, "exports/export");
    if (!exports.length && view.offset > 0) {
      view.offset = Math.max(0, view.offset - PAGE_SIZE);
      refreshHistory(true);
      return;
    }
    const snapshot = new XMLSerializer().serializeToString(root) + view.confirming;
    if (!force && snapshot === view.lastHistory) return;
    view.lastHistory = snapshot;
    keepFocus(() => renderHistory(exports.slice(0, PAGE_SIZE), exports.length > PAGE_SIZE));
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
    $("history-rows").replaceChildren(...exports.map((e) => ExportView.row(e, actions)));
    $("history-empty").hidden = exports.length > 0 || view.offset > 0;
    $("history").hidden = exports.length === 0 && view.offset === 0;
    $("page-prev").disabled = view.offset === 0;
    $("page-next").disabled = !hasOlder;
    $("page-label").textContent = `Page ${view.offset / PAGE_SIZE + 1}`;
  }

  async function act(exportId, action) {
    hooks.say("history-error", "");
    view.confirming = "";
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
    redraw();
  }

  function page(delta) {
    view.offset = Math.max(0, view.offset + delta * PAGE_SIZE);
    refreshHistory(true);
  }

  return { init, remember, refreshCurrent, refreshHistory, poll, page, firstPage };
})();
