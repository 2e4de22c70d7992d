/* The export form: every problem at once, then docs/protocol.rst, docs/exports.rst, docs/rendering.rst request document. */
"use strict";

const ExportForm = (() => {
  const { formatUtc, formatField, parseField, formatSpan } = TimeUtil;
  const el = ExportView.el;
  const $ = (id) => document.getElementById(id);

  function wholeNumber(id, minimum) {
    const text = $(id).value.trim();
    if (!text) return null;
    return /^\d+$/.test(text) && Number(text) >= minimum ? Number(text) : NaN;
  }

  /** Every reason the form cannot be sent, each with its field. */
  function check(ids, maxSpanS) {
    const problems = [];
    const add = (field, message) => problems.push({ field, message });
    const start = parseField($("start").value);
    const end = parseField($("end").value);
    const live = $("mode").value === "live";
    const snapshot = $("output").value === "snapshot";
    if (!ids.length) add("cameras", "Select at least one camera.");
    const like = (id, agoMs) => $(id).placeholder || formatField(Date.now() - agoMs);
    const zone = TimeUtil.getZone() === "utc" ? "a UTC time" : "a local time";
    if (Number.isNaN(start)) add("start", `Start is not ${zone} like ${like("start", 60000)}.`);
    if (!live && !snapshot) {
      if (Number.isNaN(end)) add("end", `End is not ${zone} like ${like("end", 0)}.`);
      else if (end <= start) add("end", "End must be after Start.");
      else if ((end - start) / 1000 > maxSpanS) {
        add("end", `The range is ${formatSpan((end - start) / 1000)}; one export may span at `
          + `most ${formatSpan(maxSpanS)} (${maxSpanS} s).`);
      }
      if (end > Date.now()) add("end", "End is in the future (choose “I stop it” for live).");
    }
    if (Number.isNaN(wholeNumber("bandwidth", 0))) add("bandwidth", "Speed limit: a whole number.");
    if (Number.isNaN(wholeNumber("maxfilesize", 0))) {
      add("maxfilesize", "Part size: a whole number of MB.");
    }
    if (Number.isNaN(wholeNumber("width", 16))) add("width", "Width: a whole number, 16 or more.");
    if ($("subtitle-time").checked && $("format").value === "ts") {
      add("subtitle-time", "A subtitle track needs MP4 or MKV, not MPEG-TS.");
    }
    return problems;
  }

  function showProblems(problems) {
    const fields = ["start", "end", "bandwidth", "maxfilesize", "width", "subtitle-time"];
    for (const id of fields) $(id).removeAttribute("aria-invalid");
    $("cameras-box").classList.toggle("invalid", problems.some((p) => p.field === "cameras"));
    for (const p of problems) {
      if (p.field !== "cameras") $(p.field).setAttribute("aria-invalid", "true");
    }
    $("export-error").replaceChildren(...(problems.length
      ? [el("ul", {}, ...problems.map((p) => el("li", { text: p.message })))] : []));
  }

  /** The request for cameras ``ids``; ``masks``: camera id → its masks as drawn on its
      picture (relative 0..1), sent in that camera's own <render>. */
  function build(ids, masks = new Map()) {
    const doc = Api.xmlDocument("export");
    const root = doc.documentElement;
    const add = (parent, name, value) => Api.appendText(parent, name, value);
    const live = $("mode").value === "live";
    const snapshot = $("output").value === "snapshot";
    const devices = add(root, "devices", "");
    for (const id of ids) {
      const device = add(devices, "device", "");
      add(device, "deviceid", id);
      add(device, "starttime", formatUtc(parseField($("start").value)));
      const end = parseField($("end").value);
      if (!snapshot && !live && Number.isFinite(end)) add(device, "endtime", formatUtc(end));
      const own = masks.get(id) || [];
      // A camera's <render> replaces the export's: it repeats the shared options.
      if (own.length) addRender(device, own);
    }
    add(root, "format", $("format").value);
    for (const field of ["path", "name"]) {
      const value = $(field).value.trim();
      if (value) add(root, field, value);
    }
    const bandwidth = wholeNumber("bandwidth", 0);
    if (bandwidth) add(root, "bandwidth", bandwidth);
    addOptions(root, live, snapshot);
    return doc;
  }

  /** The export's options, each only when it differs from the default. */
  function addOptions(root, live, snapshot) {
    const add = (parent, name, value) => Api.appendText(parent, name, value);
    if (live) add(root, "mode", "live");
    if (snapshot) add(root, "output", "snapshot");
    const parts = wholeNumber("maxfilesize", 0);
    if (parts && !snapshot) add(root, "maxfilesize", parts);
    if (!$("audio").checked && !snapshot) add(root, "audio", "false");
    addRender(root, []);
    if ($("subtitle-time").checked && !snapshot) add(root, "timestamps", "subtitle");
  }

  /** ``<render>`` under ``parent`` (the export, or one camera with its ``masks``), when any
      rendering option is chosen. */
  function addRender(parent, masks) {
    const add = (at, name, value) => Api.appendText(at, name, value);
    const comment = $("comment").value.trim();
    const width = wholeNumber("width", 16);
    if (!$("burn-time").checked && !comment && !width && !masks.length) return;
    const render = add(parent, "render", "");
    if ($("burn-time").checked) {
      const stamp = add(render, "timestamp", "");
      add(stamp, "format", "%Y-%m-%d %H:%M:%S.%f");
      add(stamp, "position", $("time-position").value);
      add(stamp, "size", $("time-size").value);
    }
    if (comment) add(add(render, "comment", ""), "text", comment);
    for (const m of masks) {
      const mask = add(render, "mask", "");
      for (const key of ["x", "y", "w", "h", "style"]) add(mask, key, m[key]);
    }
    if (width) add(render, "width", width);
  }

  const FORMATS = {
    stream: [["mp4", "MP4"], ["mkv", "Matroska (MKV)"], ["ts", "MPEG-TS"]],
    snapshot: [["jpg", "JPEG"], ["png", "PNG"]],
  };

  /** A snapshot has image formats and no End; a live export has no End ("until I stop it"). */
  function syncKind() {
    const kind = $("output").value === "snapshot" ? "snapshot" : "stream";
    const select = $("format");
    if (select.dataset.kind !== kind) {
      select.replaceChildren(...FORMATS[kind].map(([value, text]) =>
        el("option", { value, text })));
      select.dataset.kind = kind;
    }
    const noEnd = kind === "snapshot" || $("mode").value === "live";
    $("end").disabled = noEnd;
    $("end").title = noEnd ? "not used: a snapshot, or a live export until you stop it" : "";
  }

  /** Typing into a marked field takes its mark away (the others stay until the next try). */
  function onInput(event) {
    if (event.target.getAttribute("aria-invalid")) event.target.removeAttribute("aria-invalid");
  }

  return { check, showProblems, build, syncKind, onInput };
})();
