/* How an export is shown: a history row, or the progress card under the form. Pure rendering
   from a getExportVideoStatus <export> element; actions go through ``ctx.act(id, action)``,
   playing a file through ``ctx.play(file)``. Status words are plain language; the API's word
   stays in ``data-status``. */
"use strict";

const ExportView = (() => {
  const FINAL = new Set(["COMPLETED", "FAILED", "REMOVED", "EXPIRED"]);
  const WORDS = { PENDING: "Waiting", SYNCING: "Exporting", COMPLETED: "Done", FAILED: "Failed",
                  REMOVED: "Deleted", EXPIRED: "Expired" };
  /** Files a browser plays in a <video> element. */
  const PLAYABLE = new Set(["video/mp4", "video/x-matroska"]);
  const t = TimeUtil;

  function el(tag, attrs = {}, ...kids) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === false || value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    node.append(...kids.filter((k) => k !== null && k !== undefined && k !== false));
    return node;
  }

  /** A file name with break chances after "_" and "-" (never inside a word or the time). */
  function breakable(name) {
    const span = el("span", { className: "fname" });
    name.split(/(?<=[_-])/).forEach((part, i) => {
      if (i) span.append(el("wbr"));
      span.append(part);
    });
    return span;
  }

  function short(wire) {
    return wire ? wire.slice(0, 19) : "–";
  }

  function statusBadge(status) {
    return el("span", { className: `status status-${status.toLowerCase()}`,
                        text: WORDS[status] || status, title: status });
  }

  /** How long a live export has run: "running 1 min 5 s" (its progress is of the maximum). */
  function elapsedText(exp) {
    const created = t.parseUtc(Api.textOf(exp, "created"));
    return Number.isFinite(created)
      ? `running ${t.formatSpan(Math.max(0, Date.now() - created) / 1000)}` : "running";
  }

  function info(exp) {
    const id = Api.textOf(exp, "exportid");
    const status = Api.textOf(exp, "status");
    const devices = Api.findAll(exp, "devices/device");
    const manifest = Api.find(exp, "manifest");
    return { id, status, devices, exp, name: Api.textOf(exp, "name"),
             live: Api.textOf(exp, "mode") === "live",
             signature: manifest ? Api.textOf(manifest, "signature") : "" };
  }

  /** One camera of an export: status, progress, size, rate, ETA or error, and its files. */
  function deviceBlock(x, d, ctx) {
    const status = Api.textOf(d, "status");
    const progress = Number(Api.textOf(d, "progress")) || 0;
    const bytes = Number(Api.textOf(d, "bytes")) || 0;
    const kbps = Number(Api.textOf(d, "bandwidth")) || 0;
    const name = Api.textOf(d, "name") || Api.textOf(d, "deviceid");
    const facts = [];
    const live = x.live && status === "SYNCING";
    if (status === "SYNCING" || status === "PENDING") {
      facts.push(live ? elapsedText(x.exp) : `${progress} %`, t.formatBytes(bytes));
      if (kbps) facts.push(t.formatRate(kbps));
      const eta = t.etaSeconds(bytes, progress, kbps);
      if (Number.isFinite(eta) && !live) facts.push(`about ${t.formatSpan(eta)} left`);
    }
    const files = Api.findAll(d, "files/file").map((f) => fileLine(x, f, ctx));
    if (!facts.length && bytes && !files.length) {
      const gone = status === "REMOVED" || status === "EXPIRED";
      facts.push(`${t.formatBytes(bytes)} written${gone ? ", deleted" : ""}`);
    }
    if (!facts.length && kbps) facts.push(`avg ${t.formatRate(kbps)}`);
    const description = Api.textOf(d, "description");
    return el("div", { className: "dev", "data-deviceid": Api.textOf(d, "deviceid"),
                       "data-status": status, "data-progress": String(progress) },
      el("div", { className: "dev-head" },
        el("span", { className: "dev-name", text: name }), statusBadge(status),
        (status === "SYNCING" || status === "PENDING") && !live
          ? el("progress", { max: "100", value: String(progress),
                             "aria-label": `Progress of ${name} in export ${x.id}` }) : null),
      facts.length ? el("div", { className: "muted dev-facts", text: facts.join(" · ") }) : null,
      description ? el("div", { className: "error dev-error",
                                text: `${Api.textOf(d, "errorcode")}: ${description}` }) : null,
      ...files);
  }

  function fileLine(x, f, ctx) {
    const name = Api.textOf(f, "name");
    const size = t.formatBytes(Api.textOf(f, "size"));
    const done = x.status === "COMPLETED";
    const body = done
      ? el("a", { href: Api.downloadUrl(x.id, name), download: name, "data-file": name,
                  "data-key": `file-${x.id}-${name}`, title: `Download ${name}` }, breakable(name))
      : breakable(name);
    const type = Api.textOf(f, "mimetype") || (/\.mp4$/i.test(name) ? "video/mp4" : "");
    const play = done && PLAYABLE.has(type)
      ? el("a", { href: Api.downloadUrl(x.id, name), className: "play-link", role: "button",
                  "data-play": name, "data-key": `play-${x.id}-${name}`,
                  "aria-label": `Play ${name}`, text: "Play",
                  onclick: (event) => {
                    event.preventDefault();
                    ctx.play({ exportId: x.id, name, url: Api.downloadUrl(x.id, name),
                               firstMs: t.parseUtc(Api.textOf(f, "starttime")) });
                  } })
      : null;
    return el("div", { className: "file" }, body,
              el("span", { className: "muted", text: ` ${size}` }), play ? " " : null, play);
  }

  /** "Download all" (one ZIP of every file, the manifest, its signature and the key), then
      manifest.xml (and manifest.sig when the status lists one) of a COMPLETED export. */
  function manifestLinks(x) {
    if (x.status !== "COMPLETED") return [];
    const names = ["manifest.xml", ...(x.signature ? [x.signature] : [])];
    return [el("div", { className: "manifest" },
      el("a", { href: Api.downloadUrl(x.id, "bundle.zip"), download: `export-${x.id}.zip`,
                "data-file": "bundle.zip", "data-key": `all-${x.id}`, className: "download-all",
                title: "Every file, the manifest, its signature and the server's key, in one ZIP" },
         "Download all"),
      ...names.map((n) =>
        el("a", { href: Api.downloadUrl(x.id, n), download: `${x.id}-${n}`, "data-file": n,
                  "data-key": `file-${x.id}-${n}` }, n)))];
  }

  function summary(x) {
    const first = x.devices[0];
    const range = first ? `${short(Api.textOf(first, "starttime"))} – `
      + `${short(Api.textOf(first, "endtime")).slice(11)}` : "";
    const retried = Api.textOf(x.exp, "retriedfrom");
    const expires = Api.textOf(x.exp, "expires");
    const expiresMs = t.parseUtc(expires);
    return [
      el("div", {}, el("strong", { text: `#${x.id}` }),
         x.name ? el("span", { className: "exp-name", text: ` ${x.name}` }) : null),
      el("div", { className: "muted", text: `${Api.textOf(x.exp, "format")} · ${range}` }),
      el("div", { className: "muted", text: `created ${short(Api.textOf(x.exp, "created"))}` }),
      retried ? el("div", { className: "muted retried", text: `retried from #${retried}` }) : null,
      expires ? el("div", { className: "muted expires",
        text: `files kept until ${short(expires)}`
          + (expiresMs > Date.now() ? ` (${t.formatSpan((expiresMs - Date.now()) / 1000)})` : "") })
        : null,
    ];
  }

  function button(key, text, label, onclick, extra = "") {
    return el("button", { type: "button", "data-key": key, "aria-label": label, text,
                          className: extra, onclick });
  }

  /** Cancel / Delete ask first (inline, so the 1 s refresh keeps the question). */
  function actions(x, ctx) {
    const running = x.status === "PENDING" || x.status === "SYNCING";
    const deletable = x.status === "COMPLETED" || x.status === "FAILED";
    const verb = running ? "cancel" : "delete";
    if (ctx.busy && ctx.busy(x.id)) {  // a context without actions in flight has no busy()
      return [el("span", { className: "muted busy", role: "status", text: "Working…" })];
    }
    if ((running || deletable) && ctx.confirming === x.id) {
      return [el("span", { className: "confirm", role: "group",
                           "aria-label": `Confirm ${verb} of export ${x.id}` },
        el("span", { text: running ? "Cancel this export?" : "Delete its files?" }),
        button(`confirm-${x.id}`, running ? "Yes, cancel" : "Yes, delete",
               `Yes, ${verb} export ${x.id}`, () => ctx.act(x.id, "remove"), "danger"),
        button(`keep-${x.id}`, "No", `Keep export ${x.id}`, () => ctx.ask(""), ""))];
    }
    const list = [];
    if (x.status === "SYNCING" && Api.textOf(x.exp, "mode") === "live") {
      list.push(button(`stop-${x.id}`, "Stop", `Stop export ${x.id} and keep what it wrote`,
                       () => ctx.act(x.id, "stop")));
    }
    if (running) {
      list.push(button(`cancel-${x.id}`, "Cancel", `Cancel export ${x.id}`, () => ctx.ask(x.id)));
    }
    if (deletable) {
      list.push(button(`delete-${x.id}`, "Delete", `Delete export ${x.id}`, () => ctx.ask(x.id)));
    }
    if (x.status === "FAILED" || x.status === "REMOVED" || x.status === "EXPIRED") {
      list.push(button(`retry-${x.id}`, "Retry", `Retry export ${x.id}`,
                       () => ctx.act(x.id, "retry")));
    }
    return list;
  }

  function row(exp, ctx) {
    const x = info(exp);
    const folder = Api.textOf(exp, "path");
    return el("tr", { "data-exportid": x.id, "data-status": x.status },
      el("td", { "data-label": "Export", className: "summary" }, ...summary(x)),
      el("td", { "data-label": "Folder", className: "folder", text: folder || "–" }),
      el("td", { "data-label": "Cameras and files", className: "devs" },
        ...x.devices.map((d) => deviceBlock(x, d, ctx)), ...manifestLinks(x)),
      el("td", { "data-label": "Status" }, statusBadge(x.status),
         x.status === "SYNCING" ? el("div", { className: "muted",
           text: x.live ? elapsedText(exp) : `${Api.textOf(exp, "progress") || 0} %` }) : null),
      el("td", { "data-label": "Actions", className: "actions" }, ...actions(x, ctx)));
  }

  /** The progress card shown under the form for the export just started. */
  function card(exp, ctx) {
    const x = info(exp);
    const done = FINAL.has(x.status);
    const node = el("div", { className: "card current", "data-exportid": x.id, "data-status": x.status },
      el("div", { className: "current-head" },
        el("h3", { text: `Export #${x.id}${x.name ? ` ${x.name}` : ""}` }), statusBadge(x.status),
        el("span", { className: "actions" }, ...actions(x, ctx))),
      el("div", { className: "devs" }, ...x.devices.map((d) => deviceBlock(x, d, ctx))),
      ...manifestLinks(x),
      done && x.status === "COMPLETED"
        ? el("p", { className: "muted",
                    text: "Click a file to download it, Play to watch it here, or Download all."
          }) : null);
    // Keys stay unique on the page: the same export may also be a history row.
    for (const keyed of node.querySelectorAll("[data-key]")) {
      keyed.dataset.key = `card-${keyed.dataset.key}`;
    }
    return node;
  }

  return { row, card, FINAL, WORDS, el, breakable };
})();
