/* Redrawing a list of exports (the cards, the history rows) in place: only what changed is
   drawn again, so a button under the pointer stays the same node across the 1 s refresh. */
"use strict";

const ListPatch = (() => {
  /** A drawn row or card → the key it was drawn from (``keyOf`` of its export). */
  const drawnFrom = new WeakMap();

  /** Draw ``exports`` (``<export>`` elements) into ``box`` touching only what changed: a row
      or card whose key is the same stays the very same node, and a changed one keeps its old buttons when they are the
      same buttons. The 1 s refresh must never swap a button between a press and its release:
      the browser then drops the click (the press was on a node no longer in the page). */
  function patch(box, exports, keyOf, draw) {
    const before = new Map([...box.children].map((n) => [n.dataset.exportid, n]));
    const nodes = exports.map((exp) => {
      const key = keyOf(exp);
      const old = before.get(Api.textOf(exp, "exportid"));
      if (old && drawnFrom.get(old) === key) return old;
      const node = draw(exp);
      drawnFrom.set(node, key);
      const [oldActions, newActions] = [old, node].map((n) => n && n.querySelector(".actions"));
      if (oldActions && newActions && oldActions.outerHTML === newActions.outerHTML) {
        newActions.replaceWith(oldActions);
      }
      return node;
    });
    // Gone ones first, so that a kept node is not moved (moving it detaches it: a click too).
    const keep = new Set(nodes);
    for (const node of [...box.children]) if (!keep.has(node)) node.remove();
    nodes.forEach((node, i) => {
      if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null);
    });
  }

  return { patch };
})();
