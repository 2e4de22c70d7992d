/* The timeline: one lane per ticked camera (recorded intervals, gaps), a zoomable UTC axis,
   and one pair of Start/End range handles (docs/page.rst) moved by mouse, touch or keyboard. */
"use strict";

const Timeline = (() => {
  const SECOND = 1000;
  const MINUTE = 60 * SECOND;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  const MIN_GAP_MS = SECOND;
  const MIN_VIEW_MS = 10 * SECOND;
  const MAX_VIEW_MS = 31 * DAY;
  const TICK_STEPS = [SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
    MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
    3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];
  const KEY_STEPS = { ArrowLeft: -SECOND, ArrowDown: -SECOND, ArrowRight: SECOND,
                      ArrowUp: SECOND, PageDown: -MINUTE, PageUp: MINUTE };

  function div(className, attrs = {}) {
    const node = document.createElement("div");
    node.className = className;
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  function clamp(value, low, high) {
    return Math.min(Math.max(value, low), high);
  }

  class Timeline {
    /**
     * ``root``: an empty element to build in. ``hooks.onMove(start, end, which, done)`` runs on
     * every handle move (``done`` once a drag or key press has ended); ``hooks.onView(from, to)``
     * when the axis changes; ``hooks.onLane(id)`` when a lane's name is chosen.
     */
    constructor(root, hooks) {
      this.hooks = hooks;
      this.start = NaN;
      this.end = NaN;
      this.from = Date.now() - HOUR;
      this.to = Date.now();
      this.maxSpanMs = DAY;
      this.lanes = [];
      this.intervals = new Map();
      this.active = "";
      this.drag = null;
      this.build(root);
    }

    build(root) {
      this.names = div("tl-names");
      this.track = div("tl-track");
      this.lanesBox = div("tl-lanes");
      this.axis = div("tl-axis", { "aria-hidden": "true" });
      this.future = div("tl-future", { title: "not recorded yet" });
      this.selection = div("tl-sel");
      // The span limit on the axis: how early Start may go (End - max) and how late End may go.
      this.limits = [div("tl-limit before", { "aria-hidden": "true" }),
                     div("tl-limit after", { "aria-hidden": "true" })];
      this.nowLine = div("tl-now", { "aria-hidden": "true" });
      this.handles = { start: this.handle("Start"), end: this.handle("End") };
      this.track.append(this.lanesBox, this.axis, this.future, this.selection, ...this.limits,
                        this.nowLine, this.handles.start, this.handles.end);
      root.replaceChildren(this.names, this.track);
      this.track.addEventListener("pointerdown", (e) => this.onPointerDown(e));
      this.track.addEventListener("pointermove", (e) => this.onPointerMove(e));
      this.track.addEventListener("pointerup", (e) => this.onPointerUp(e));
      this.track.addEventListener("pointercancel", (e) => this.onPointerUp(e));
      this.track.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
      new ResizeObserver(() => this.render()).observe(this.track);
    }

    handle(label) {
      const node = div(`tl-handle tl-${label.toLowerCase()}`, {
        role: "slider", tabindex: "0", "aria-label": label, "aria-orientation": "horizontal",
      });
      node.append(div("tl-knob", { "aria-hidden": "true" }));
      node.addEventListener("keydown", (e) => this.onKey(e, label.toLowerCase()));
      return node;
    }

    /* ---- what the page tells the timeline ---- */

    setLanes(lanes) {
      this.lanes = lanes;
      if (!lanes.some((l) => l.id === this.active)) this.active = lanes.length ? lanes[0].id : "";
      this.render();
    }

    setIntervals(id, intervals) {
      this.intervals.set(id, intervals);
      this.render();
    }

    setActive(id) {
      this.active = id;
      this.render();
    }

    setMaxSpan(ms) {
      this.maxSpanMs = ms;
      this.render();
    }

    /** Move both handles (from the text fields); the axis follows when they leave it. */
    setRange(start, end) {
      if (!(start < end)) return;
      this.start = start;
      this.end = end;
      if (start < this.from || end > this.to) this.fit();
      else this.render();
    }

    setView(from, to, quiet = false) {
      let span = clamp(to - from, MIN_VIEW_MS, MAX_VIEW_MS);
      const middle = (from + to) / 2;
      if (!Number.isFinite(span)) span = HOUR;
      this.from = Math.round(middle - span / 2);
      this.to = Math.round(middle + span / 2);
      this.render();
      if (!quiet) this.hooks.onView(this.from, this.to);
    }

    /** Zoom to the selection with a margin of a sixth on each side. */
    fit() {
      if (!(this.start < this.end)) return;
      const margin = Math.max((this.end - this.start) / 6, 2 * SECOND);
      this.setView(this.start - margin, this.end + margin);
    }

    zoom(factor, at = NaN) {
      const pivot = Number.isFinite(at) ? at : this.pivot();
      const from = pivot - (pivot - this.from) * factor;
      const to = pivot + (this.to - pivot) * factor;
      this.setView(from, to);
    }

    pan(fraction) {
      const shift = (this.to - this.from) * fraction;
      this.setView(this.from + shift, this.to + shift);
    }

    pivot() {
      return this.start < this.end ? (this.start + this.end) / 2 : (this.from + this.to) / 2;
    }

    /* ---- moving the handles ---- */

    /** Set one handle, keeping Start < End, End not in the future; returns the value used. */
    move(which, ms) {
      const now = Date.now();
      if (which === "start") this.start = Math.round(clamp(ms, 0, this.end - MIN_GAP_MS));
      else this.end = Math.round(clamp(ms, this.start + MIN_GAP_MS, now));
      return which === "start" ? this.start : this.end;
    }

    /** Arrows: 1 s, Page Up/Down: 1 min, Home/End: the handle's lowest/highest value. */
    onKey(event, which) {
      const target = this.keyTarget(event.key, which);
      if (target === undefined || !(this.start < this.end)) return;
      event.preventDefault();
      const value = this.move(which, target);
      if (value < this.from || value > this.to) {
        const span = this.to - this.from;
        this.setView(value - span / 2, value + span / 2);
      } else {
        this.renderRange();
      }
      this.hooks.onMove(this.start, this.end, which, true);
    }

    keyTarget(key, which) {
      const now = which === "start" ? this.start : this.end;
      if (key === "Home") return which === "start" ? this.from : this.start + MIN_GAP_MS;
      if (key === "End") return which === "start" ? this.end - MIN_GAP_MS : this.to;
      const step = KEY_STEPS[key];
      return step === undefined ? undefined : now + step;
    }

    timeAt(clientX) {
      const rect = this.track.getBoundingClientRect();
      const fraction = clamp((clientX - rect.left) / Math.max(rect.width, 1), 0, 1);
      const ms = this.from + fraction * (this.to - this.from);
      // Dragging resolves to what a pixel can mean: 100 ms on short views, else whole seconds.
      const grain = this.to - this.from <= 2 * MINUTE ? 100 : SECOND;
      return Math.round(ms / grain) * grain;
    }

    onPointerDown(event) {
      if (event.button !== 0 || !(this.start < this.end)) return;
      const handle = event.target.closest(".tl-handle");
      let which;
      if (handle) {
        which = handle === this.handles.start ? "start" : "end";
      } else {
        // A press on the track takes the nearer handle there.
        const at = this.timeAt(event.clientX);
        which = Math.abs(at - this.start) <= Math.abs(at - this.end) ? "start" : "end";
      }
      event.preventDefault();
      this.track.setPointerCapture(event.pointerId);
      this.drag = { which, pointerId: event.pointerId };
      this.handles[which].focus({ preventScroll: true });
      this.dragTo(event.clientX, false);
    }

    onPointerMove(event) {
      if (this.drag && event.pointerId === this.drag.pointerId) {
        this.dragTo(event.clientX, false);
      }
    }

    onPointerUp(event) {
      if (!this.drag || event.pointerId !== this.drag.pointerId) return;
      const { which } = this.drag;
      this.drag = null;
      this.renderRange();
      this.hooks.onMove(this.start, this.end, which, true);
    }

    dragTo(clientX, done) {
      this.move(this.drag.which, this.timeAt(clientX));
      this.renderRange();
      this.hooks.onMove(this.start, this.end, this.drag.which, done);
    }

    onWheel(event) {
      // Plain wheel scrolls the page; Ctrl (also a touchpad pinch) zooms, Shift pans.
      if (!event.ctrlKey && !event.shiftKey) return;
      event.preventDefault();
      const delta = event.deltaY || event.deltaX;
      if (event.ctrlKey) this.zoom(delta > 0 ? 1.25 : 0.8, this.timeAt(event.clientX));
      else this.pan(delta > 0 ? 0.1 : -0.1);
    }

    /* ---- drawing ---- */

    x(ms) {
      return ((ms - this.from) / (this.to - this.from)) * 100;
    }

    place(node, fromMs, toMs) {
      const left = clamp(this.x(fromMs), 0, 100);
      const right = clamp(this.x(toMs), 0, 100);
      node.style.left = `${left}%`;
      node.style.width = `${Math.max(right - left, 0)}%`;
      node.hidden = right <= left && (toMs < this.from || fromMs > this.to);
    }

    render() {
      this.renderLanes();
      this.renderAxis();
      const now = Date.now();
      this.place(this.future, now, this.to);
      this.future.hidden = now >= this.to;
      this.nowLine.hidden = now < this.from || now > this.to;
      this.nowLine.style.left = `${this.x(now)}%`;
      this.renderRange();
    }

    renderRange() {
      const valid = this.start < this.end;
      for (const node of [this.selection, this.handles.start, this.handles.end]) {
        node.hidden = !valid;
      }
      if (!valid) return;
      this.place(this.selection, this.start, this.end);
      this.selection.hidden = false;
      this.selection.classList.toggle("over-limit", this.end - this.start > this.maxSpanMs);
      for (const which of ["start", "end"]) {
        const value = this[which];
        const node = this.handles[which];
        node.style.left = `${clamp(this.x(value), 0, 100)}%`;
        node.classList.toggle("off-scale", value < this.from || value > this.to);
        node.setAttribute("aria-valuenow", String(value));
        node.setAttribute("aria-valuemin", String(which === "start" ? this.from : this.start));
        node.setAttribute("aria-valuemax", String(which === "start" ? this.end : this.to));
        node.setAttribute("aria-valuetext", `${TimeUtil.formatUtc(value)} UTC`);
        node.classList.toggle("dragging", Boolean(this.drag && this.drag.which === which));
      }
      const label = `max ${TimeUtil.formatSpan(this.maxSpanMs / 1000)}`;
      const marks = [this.end - this.maxSpanMs, this.start + this.maxSpanMs];
      marks.forEach((at, i) => {
        const node = this.limits[i];
        node.hidden = at < this.from || at > this.to;
        node.style.left = `${this.x(at)}%`;
        const text = document.createElement("span");
        text.textContent = i === 0 ? `← ${label}` : `${label} →`;
        node.replaceChildren(text);
        node.title = i === 0 ? `Start may not be earlier (${label} per export)`
          : `End may not be later (${label} per export)`;
      });
    }

    renderLanes() {
      // The name buttons are rebuilt only when they change (a focused one keeps its focus).
      const namesKey = JSON.stringify(this.lanes);
      if (namesKey !== this.namesKey) {
        this.namesKey = namesKey;
        this.renderNames();
      }
      this.lanes.forEach((lane, i) => {
        this.names.children[i].setAttribute("aria-pressed", String(lane.id === this.active));
      });
      this.renderBars();
    }

    renderNames() {
      const names = this.lanes.map((lane) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "tl-name";
        button.textContent = lane.name;
        button.title = `Preview ${lane.name}`;
        button.addEventListener("click", () => this.hooks.onLane(lane.id));
        return button;
      });
      this.names.replaceChildren(...names, div("tl-axis-gap"));
    }

    renderBars() {
      const bars = this.lanes.map((lane) => {
        const bar = div("tl-bar", { "data-deviceid": lane.id });
        bar.classList.toggle("active", lane.id === this.active);
        for (const [s, e] of this.intervals.get(lane.id) || []) {
          if (e < this.from || s > this.to) continue;
          const rec = div("tl-rec");
          this.place(rec, s, e);
          bar.append(rec);
        }
        return bar;
      });
      this.lanesBox.replaceChildren(...bars);
      this.track.classList.toggle("empty", !this.lanes.length);
    }

    renderAxis() {
      const width = this.track.clientWidth || 600;
      const span = this.to - this.from;
      const step = TICK_STEPS.find((s) => span / s <= width / 80) || TICK_STEPS.at(-1);
      const ticks = [];
      for (let t = Math.ceil(this.from / step) * step; t <= this.to; t += step) {
        const tick = div("tl-tick");
        tick.style.left = `${this.x(t)}%`;
        const midnight = t % DAY === 0;
        tick.textContent = TimeUtil.formatAxis(t, step < MINUTE, midnight || step >= DAY);
        ticks.push(tick);
      }
      this.axis.replaceChildren(...ticks);
    }
  }

  return { Timeline, HOUR, DAY, MINUTE };
})();
