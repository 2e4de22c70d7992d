/* The XML command API as the page uses it: fetch, DOMParser, and coded errors. */
"use strict";

const Api = (() => {
  // Sent on every request: the server's proof that a state-changing request comes from this
  // page and not from another origin (CSRF), and the signal to omit its Basic challenge.
  const HEADERS = { "X-Requested-With": "XMLHttpRequest" };

  class ApiError extends Error {
    constructor(code, description, httpStatus) {
      super(description || `error ${code}`);
      this.code = code;
      this.httpStatus = httpStatus;
    }
    get authRequired() { return this.httpStatus === 401 || this.code === -1001; }
  }

  /** Parse a response document; throw ApiError unless errorcode is 0. */
  function parseResult(text, httpStatus) {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const root = doc.documentElement;
    if (!root || root.nodeName !== "result" || doc.getElementsByTagName("parsererror").length) {
      throw new ApiError(-18, `unexpected answer from the server (HTTP ${httpStatus})`, httpStatus);
    }
    const code = parseInt(root.getAttribute("errorcode"), 10);
    if (code !== 0) {
      throw new ApiError(code, textOf(root, "description"), httpStatus);
    }
    return root;
  }

  async function send(url, body) {
    const init = { credentials: "same-origin", headers: { ...HEADERS }, cache: "no-store" };
    if (body !== undefined) {
      init.method = "POST";
      init.body = body;
      init.headers["Content-Type"] = "text/xml; charset=utf-8";
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(-18, "the server cannot be reached", 0);
    }
    return parseResult(await response.text(), response.status);
  }

  /** Run ``command`` with query ``params``; POST ``body`` (an XML Document) when given. */
  function command(name, params = {}, body = undefined) {
    const query = new URLSearchParams({ command: name, ...params });
    const text = body === undefined ? undefined : new XMLSerializer().serializeToString(body);
    return send(`/command?${query}`, text);
  }

  /** POST /webservice AuthenticateUser; the server sets the session cookie. */
  function login(username, password) {
    const doc = xmlDocument("AuthenticateUser", { username, password });
    return send("/webservice", new XMLSerializer().serializeToString(doc));
  }

  /** A new XML document ``<rootName>`` with text children from ``fields``. */
  function xmlDocument(rootName, fields = {}) {
    const doc = document.implementation.createDocument(null, rootName, null);
    for (const [key, value] of Object.entries(fields)) {
      appendText(doc.documentElement, key, value);
    }
    return doc;
  }

  function appendText(parent, name, value) {
    const child = parent.ownerDocument.createElement(name);
    child.textContent = String(value);
    parent.appendChild(child);
    return child;
  }

  /** Text of the first ``path`` ("a/b") below ``element``, or "" (names are case-insensitive). */
  function textOf(element, path) {
    const found = find(element, path);
    return found ? found.textContent.trim() : "";
  }

  function find(element, path) {
    let current = element;
    for (const part of path.split("/")) {
      current = current && children(current, part)[0];
    }
    return current || null;
  }

  function children(element, name) {
    const lower = name.toLowerCase();
    return Array.from(element.children).filter((c) => c.nodeName.toLowerCase() === lower);
  }

  /** Every element at ``path`` ("a/b/c"), in document order. */
  function findAll(element, path) {
    let current = [element];
    for (const part of path.split("/")) {
      current = current.flatMap((e) => children(e, part));
    }
    return current;
  }

  function downloadUrl(exportId, fileName) {
    const query = new URLSearchParams({
      command: "downloadExportVideo", exportid: String(exportId), file: fileName,
    });
    return `/command?${query}`;
  }

  /**
   * ``getSnapshot`` as an image: ``{blob, frameTime}`` (``X-Frame-Time``, the archive time of
   * the frame shown); a coded answer (-9 in a gap) throws ApiError. The browser's HTTP cache
   * may answer (the server sends ``Cache-Control: private`` and an ETag).
   */
  async function snapshot(params) {
    const query = new URLSearchParams({ command: "getSnapshot", ...params });
    let response;
    try {
      response = await fetch(`/command?${query}`,
                             { credentials: "same-origin", headers: { ...HEADERS } });
    } catch (err) {
      throw new ApiError(-18, "the server cannot be reached", 0);
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("image/")) {
      parseResult(await response.text(), response.status);
      throw new ApiError(-18, `unexpected answer from the server (HTTP ${response.status})`,
                         response.status);
    }
    return { blob: await response.blob(), frameTime: response.headers.get("X-Frame-Time") || "" };
  }

  return { ApiError, command, login, snapshot, xmlDocument, appendText, textOf, find, findAll,
           downloadUrl };
})();
