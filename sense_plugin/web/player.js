/* Video in the page: the chosen range of one camera (getPlayback, played in the preview) and a
   finished export's files (in the player above the page); beside each, the archive time of the
   frame shown. A HEAD request tells where the range's video starts (the keyframe at or before
   Start): its X-First-Frame-Time is the archive time of the video's time 0. */
"use strict";

const Player = (() => {
  const HEADERS = { "X-Requested-With": "XMLHttpRequest" };
  const t = TimeUtil;

  function playbackUrl(deviceId, startMs, endMs) {
    const query = new URLSearchParams({ command: "getPlayback", deviceid: deviceId,
                                        starttime: t.formatUtc(startMs),
                                        endtime: t.formatUtc(endMs) });
    return `/command?${query}`;
  }

  /** Archive time (ms) of the range video's time 0; a refusal throws its coded error. */
  async function firstFrameMs(url, params) {
    let response;
    try {
      response = await fetch(url, { method: "HEAD", credentials: "same-origin",
                                    headers: { ...HEADERS }, cache: "no-store" });
    } catch (err) {
      throw new Api.ApiError(-18, "the server cannot be reached", 0);
    }
    const first = t.parseUtc(response.headers.get("X-First-Frame-Time") || "");
    if (response.ok && Number.isFinite(first)) return first;
    await Api.command("getPlayback", params);  // a HEAD has no body: ask for the reason
    throw new Api.ApiError(-18, `unexpected answer from the server (HTTP ${response.status})`,
                           response.status);
  }

  /** "Frame recorded at <field zone> (UTC …)": what a video shows at its current time. */
  function frameText(firstMs, video) {
    const ms = firstMs + Math.floor(video.currentTime * 1000);
    const zone = t.getZone() === "utc" ? "UTC" : "local time";
    return { ms, text: `Frame recorded at ${t.formatField(ms)} ${zone}`
      + (t.getZone() === "utc" ? "" : ` (${t.formatUtc(ms)} UTC)`) };
  }

  function follow(video, output, firstMs) {
    const show = () => {
      if (!Number.isFinite(firstMs)) return;
      const { ms, text } = frameText(firstMs, video);
      output.textContent = text;
      video.dataset.frameTime = String(ms);
    };
    video.ontimeupdate = show;
    video.onseeked = show;
    video.onerror = () => {
      output.textContent = "The video cannot be played in this browser; download it instead.";
    };
  }

  function unload(video) {
    video.pause();
    video.ontimeupdate = video.onseeked = video.onerror = null;
    video.removeAttribute("src");
    delete video.dataset.frameTime;
    video.load();
  }

  /** The range of the preview's camera, played in place of its picture. */
  class RangePlayer {
    constructor(frame, img, video, output, stopButton) {
      Object.assign(this, { frame, img, video, output, stopButton });
      this.seq = 0;
      stopButton.addEventListener("click", () => this.stop());
    }

    get playing() {
      return !this.video.hidden;
    }

    async play(device, range) {
      this.seq += 1;
      const mine = this.seq;
      const params = { deviceid: device.id, starttime: t.formatUtc(range.start),
                       endtime: t.formatUtc(range.end) };
      const url = playbackUrl(device.id, range.start, range.end);
      this.output.textContent = `Loading ${device.name}…`;
      let first;
      try {
        first = await firstFrameMs(url, params);
      } catch (err) {
        if (mine === this.seq) this.output.textContent = `Cannot play: ${err.message}`;
        return;
      }
      if (mine !== this.seq) return;
      this.frame.classList.add("playing");
      this.frame.parentElement.classList.add("is-playing");
      this.video.dataset.firstFrame = String(first);
      this.video.setAttribute("aria-label", `${device.name} from ${t.formatUtc(range.start)} UTC`);
      follow(this.video, this.output, first);
      this.video.src = url;
      this.video.hidden = false;
      this.img.hidden = true;
      this.stopButton.hidden = false;
      this.output.textContent = frameText(first, this.video).text;
      this.video.play().catch(() => { /* the controls still let the user start it */ });
    }

    /** Back to the still picture (a handle moved, another camera, or the button). */
    stop() {
      this.seq += 1;
      if (!this.playing) return;
      unload(this.video);
      this.video.hidden = true;
      this.frame.classList.remove("playing");
      this.frame.parentElement.classList.remove("is-playing");
      this.img.hidden = !this.img.getAttribute("src");
      this.stopButton.hidden = true;
      this.output.textContent = "";
    }
  }

  /** A finished export's file, in the player section. */
  class FilePlayer {
    constructor(section, title, video, output, close) {
      Object.assign(this, { section, title, video, output });
      close.addEventListener("click", () => this.close());
    }

    open(file) {
      this.title.textContent = `Export #${file.exportId}: ${file.name}`;
      follow(this.video, this.output, file.firstMs);
      this.output.textContent = "";
      this.video.src = file.url;
      this.section.hidden = false;
      this.section.scrollIntoView({ block: "nearest" });
      this.video.play().catch(() => { /* the controls still let the user start it */ });
    }

    close() {
      unload(this.video);
      this.section.hidden = true;
    }
  }

  return { RangePlayer, FilePlayer, playbackUrl };
})();
