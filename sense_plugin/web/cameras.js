/* The cameras: the list with each camera's recorded range, the ticked ones, and what follows
   when the choice changes (timeline lanes, the range, the preview). */
"use strict";

const Cameras = (() => {
  const { parseUtc, formatField } = TimeUtil;
  const el = ExportView.el;
  const $ = (id) => document.getElementById(id);
  /** From the page: its shared ``state`` and ``guarded(promise)``. */
  let state = null;
  let guarded = null;

  function init(page) {
    ({ state, guarded } = page);
  }

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
                      checked: checked.has(d.id), disabled,
                      "aria-describedby": `cam-${d.id}-info`, onchange: onSelectionChange }),
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
    const range = RangePick.currentRange();
    if (!none && !range) RangePick.fillLastRecorded(60);
    else RangePick.scheduleLanes(0);
    RangePick.scheduleRecorded();
    RangePick.updatePreview();
  }

  return { init, loadDevices, refreshRanges, renderCameraInfo, setPlaceholders, selectedIds,
           selectedDevices };
})();
