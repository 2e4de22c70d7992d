/* Privacy masks drawn on the preview by dragging rectangles; coordinates relative 0..1 of the
   picture (<mask> of the export request). Each camera shows its own view, so masks belong to
   the camera they were drawn on (its <device><render>). */
"use strict";

const Masks = (() => {
  const MIN_SIZE = 0.01;

  function clamp01(v) {
    return Math.min(Math.max(v, 0), 1);
  }

  function round3(v) {
    return Math.round(v * 1000) / 1000;
  }

  class Masks {
    /** ``frame``: the preview's box; ``img`` its picture; ``list`` where masks are listed;
        ``toggle`` the draw button (aria-pressed); ``style`` the solid/pixelate select. */
    constructor(frame, img, list, toggle, style, cameraLabel) {
      Object.assign(this, { frame, img, list, toggle, style, cameraLabel });
      this.byId = new Map();
      this.camera = "";
      this.cameraName = "";
      this.draft = null;
      this.layer = document.createElement("div");
      this.layer.className = "mask-layer";
      frame.append(this.layer);
      img.addEventListener("load", () => this.layout());
      new ResizeObserver(() => this.layout()).observe(frame);
      toggle.addEventListener("click", () => this.setDrawing(!this.drawing));
      this.layer.addEventListener("pointerdown", (e) => this.onDown(e));
      this.layer.addEventListener("pointermove", (e) => this.onMove(e));
      this.layer.addEventListener("pointerup", (e) => this.onUp(e));
      this.layer.addEventListener("pointercancel", () => { this.draft = null; this.render(); });
      this.setDrawing(false);
    }

    get drawing() {
      return this.toggle.getAttribute("aria-pressed") === "true";
    }

    setDrawing(on) {
      this.toggle.setAttribute("aria-pressed", String(on));
      this.toggle.textContent = on ? "Done drawing" : "Draw a mask";
      this.layer.classList.toggle("drawing", on);
    }

    /** The shown camera's masks (drawn on its picture). */
    get items() {
      if (!this.byId.has(this.camera)) this.byId.set(this.camera, []);
      return this.byId.get(this.camera);
    }

    /** The masks of the shown camera: ``[{x, y, w, h, style}]``. */
    get masks() {
      return this.items.map((m) => ({ ...m }));
    }

    /** Camera id → its masks, for every camera that has any. */
    byCamera() {
      return new Map([...this.byId].filter(([id, list]) => id && list.length)
        .map(([id, list]) => [id, list.map((m) => ({ ...m }))]));
    }

    /** The preview shows another camera: its masks are the ones shown and drawn. */
    setCamera(id, name) {
      if (id === this.camera && name === this.cameraName) return;
      this.camera = id;
      this.cameraName = name;
      this.draft = null;
      this.render();
    }

    /** Lay the mask layer exactly over the picture (object-fit: contain leaves bars). */
    layout() {
      const fw = this.frame.clientWidth;
      const fh = this.frame.clientHeight;
      const aspect = this.img.naturalWidth && this.img.naturalHeight
        ? this.img.naturalWidth / this.img.naturalHeight : fw / Math.max(fh, 1);
      const w = fw / fh > aspect ? fh * aspect : fw;
      const h = fw / fh > aspect ? fh : fw / aspect;
      Object.assign(this.layer.style, { left: `${(fw - w) / 2}px`, top: `${(fh - h) / 2}px`,
                                        width: `${w}px`, height: `${h}px` });
    }

    point(event) {
      const r = this.layer.getBoundingClientRect();
      return [clamp01((event.clientX - r.left) / r.width), clamp01((event.clientY - r.top) / r.height)];
    }

    onDown(event) {
      if (!this.drawing || event.button !== 0) return;
      event.preventDefault();
      this.layer.setPointerCapture(event.pointerId);
      const [x, y] = this.point(event);
      this.draft = { x0: x, y0: y, x1: x, y1: y };
      this.render();
    }

    onMove(event) {
      if (!this.draft) return;
      [this.draft.x1, this.draft.y1] = this.point(event);
      this.render();
    }

    onUp(event) {
      if (!this.draft) return;
      [this.draft.x1, this.draft.y1] = this.point(event);
      const box = this.box(this.draft);
      this.draft = null;
      if (box.w >= MIN_SIZE && box.h >= MIN_SIZE) {
        this.items.push({ ...box, style: this.style.value });
      }
      this.render();
    }

    box(d) {
      const x = round3(Math.min(d.x0, d.x1));
      const y = round3(Math.min(d.y0, d.y1));
      // Rounded so that x + w <= 1 and y + h <= 1 hold exactly (the server checks them).
      const w = round3(Math.min(Math.abs(d.x1 - d.x0), 1 - x));
      const h = round3(Math.min(Math.abs(d.y1 - d.y0), 1 - y));
      return { x, y, w, h };
    }

    remove(index) {
      this.items.splice(index, 1);
      this.render();
    }

    render() {
      this.cameraLabel.textContent = this.camera
        ? `Masks on ${this.cameraName}: ${this.items.length || "none"}` : "";
      this.toggle.disabled = !this.camera;
      const rects = this.items.map((m, i) => this.rect(m, `mask ${m.style}`, `${i + 1}`));
      if (this.draft) rects.push(this.rect(this.box(this.draft), "mask draft", ""));
      this.layer.replaceChildren(...rects);
      this.list.replaceChildren(...this.items.map((m, i) => ExportView.el("li", {},
        `Mask ${i + 1} (${m.style}): x ${m.x}, y ${m.y}, ${m.w} × ${m.h} `,
        ExportView.el("button", { type: "button", className: "small", text: "Remove",
                                  "aria-label": `Remove mask ${i + 1}`,
                                  onclick: () => this.remove(i) }))));
    }

    rect(m, className, label) {
      const node = document.createElement("div");
      node.className = className;
      node.textContent = label;
      Object.assign(node.style, { left: `${m.x * 100}%`, top: `${m.y * 100}%`,
                                  width: `${m.w * 100}%`, height: `${m.h * 100}%` });
      return node;
    }
  }

  return { Masks };
})();
