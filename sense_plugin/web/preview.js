/* The preview: the frame shown at a handle's time, fetched with getSnapshot.
   At most one request in flight; while it runs only the latest wish is kept; requests start at
   least THROTTLE_MS apart; answers are kept (a small LRU of blob URLs) for going back. */
"use strict";

const Preview = (() => {
  const THROTTLE_MS = 150;
  const CACHE_SIZE = 48;
  const WIDTH_GRAIN = 80;

  class Preview {
    constructor(img, caption, note) {
      this.img = img;
      this.caption = caption;
      this.note = note;
      this.cache = new Map();
      this.busy = false;
      this.wanted = null;
      this.lastStart = 0;
      this.timer = null;
      this.shownKey = "";
      this.requests = 0;
      // Per camera, the recorded picture's width once known: the server does not upscale.
      this.native = new Map();
      // Wishes are numbered: an answer older than the picture shown is cached, never shown.
      this.seq = 0;
      this.shownSeq = 0;
    }

    /** Ask for ``deviceId``'s frame at ``ms``; ``label`` says which handle ("Start"). */
    show(deviceId, name, ms, label) {
      if (!deviceId || !Number.isFinite(ms)) {
        this.clear("Tick a camera to see its picture here.");
        return;
      }
      const width = Math.min(this.width(), this.native.get(deviceId) || Infinity);
      this.seq += 1;
      this.wanted = { deviceId, name, ms, label, width, key: `${deviceId}|${ms}|${width}`,
                      seq: this.seq };
      this.caption.textContent = `${name} at ${label}: ${TimeUtil.formatUtc(ms)} UTC`;
      const hit = this.cache.get(this.wanted.key);
      if (hit) {
        this.cache.delete(this.wanted.key);
        this.cache.set(this.wanted.key, hit);
        this.display(this.wanted, hit);
        this.wanted = null;
        return;
      }
      this.pump();
    }

    clear(message) {
      this.wanted = null;
      this.seq += 1;
      this.shownSeq = this.seq;
      this.img.hidden = true;
      this.img.removeAttribute("src");
      this.shownKey = "";
      this.caption.textContent = "";
      this.note.textContent = message;
    }

    /** Request width: the preview's CSS width in device pixels, in steps (better cache hits). */
    width() {
      const css = this.img.parentElement.clientWidth || 320;
      const px = Math.ceil((css * (window.devicePixelRatio || 1)) / WIDTH_GRAIN) * WIDTH_GRAIN;
      return Math.min(Math.max(px, WIDTH_GRAIN), 1920);
    }

    pump() {
      if (this.busy || !this.wanted || this.timer) return;
      const wait = this.lastStart + THROTTLE_MS - performance.now();
      if (wait > 0) {
        this.timer = setTimeout(() => { this.timer = null; this.pump(); }, wait);
        return;
      }
      this.fetch(this.wanted);
      this.wanted = null;
    }

    async fetch(wish) {
      this.busy = true;
      this.lastStart = performance.now();
      this.requests += 1;
      this.img.parentElement.classList.add("loading");
      try {
        const params = { deviceid: wish.deviceId, time: TimeUtil.formatUtc(wish.ms) };
        if (wish.width < (this.native.get(wish.deviceId) || Infinity)) {
          params.width = String(wish.width);
        }
        let answer;
        try {
          answer = await Api.snapshot(params);
        } catch (err) {
          if (err.code !== -22 || !params.width) throw err;
          // Smaller than the preview: ask for the picture as recorded, and remember its width.
          delete params.width;
          answer = await Api.snapshot(params);
          this.native.set(wish.deviceId, await imageWidth(answer.blob));
        }
        const entry = { url: URL.createObjectURL(answer.blob), frameTime: answer.frameTime,
                        error: "" };
        this.remember(wish.key, entry);
        this.display(wish, entry);
      } catch (err) {
        const entry = { url: "", frameTime: "", error: err.message, code: err.code };
        if (err.code === -9) this.remember(wish.key, entry);
        this.display(wish, entry);
      } finally {
        this.busy = false;
        this.img.parentElement.classList.remove("loading");
        this.pump();
      }
    }

    remember(key, entry) {
      this.cache.set(key, entry);
      while (this.cache.size > CACHE_SIZE) {
        const [oldKey, old] = this.cache.entries().next().value;
        this.cache.delete(oldKey);
        if (old.url && oldKey !== this.shownKey) URL.revokeObjectURL(old.url);
      }
    }

    display(wish, entry) {
      if (wish.seq < this.shownSeq) return;
      this.shownSeq = wish.seq;
      // The time and camera the picture is for, on the Preview region (docs/page.rst hooks).
      const region = this.img.closest("[aria-label=Preview]") || this.img.parentElement;
      region.dataset.time = String(wish.ms);
      region.dataset.deviceid = wish.deviceId;
      if (entry.error) {
        this.img.hidden = true;
        this.note.textContent = entry.code === -9 ? `No picture: ${entry.error}.`
          : `The picture cannot be loaded: ${entry.error}`;
        return;
      }
      this.shownKey = wish.key;
      this.img.alt = `${wish.name} at ${TimeUtil.formatUtc(wish.ms)} UTC`;
      this.img.src = entry.url;
      this.img.hidden = false;
      this.img.dataset.frameTime = entry.frameTime;
      this.note.textContent = entry.frameTime ? `Frame recorded at ${entry.frameTime} UTC` : "";
    }
  }

  async function imageWidth(blob) {
    try {
      const bitmap = await createImageBitmap(blob);
      const { width } = bitmap;
      bitmap.close();
      return width;
    } catch (err) {
      return WIDTH_GRAIN;
    }
  }

  return { Preview };
})();
