// The dashboard's actor table: sortable by any column, filtered by key, and the idle wallet
// and checkout shards folded into one summary row so the busy actors (and the dates) stand out.
//
// An idle shard is a wallet or checkout shard with an empty mailbox, no error and no overload;
// "Show idle shards" lists them one by one again.

import { formatNumber as fmt } from "./numbers.js";

const $ = (id) => document.getElementById(id);

const COLUMNS = [
  { key: "key", label: "Actor", text: true },
  { key: "kind", label: "Kind", text: true },
  { key: "host", label: "Host", text: true, only: "cluster-only" }, // shown in a cluster only
  { key: "mailboxDepth", label: "Mailbox" },
  { key: "processed", label: "Processed" },
  { key: "errors", label: "Errors" },
  { key: "overloaded", label: "Overloaded" },
  { key: "latencyP50Ms", label: "Turn p50 ms", digits: 2 },
  { key: "latencyP99Ms", label: "Turn p99 ms", digits: 2 },
  { key: "latencyMaxMs", label: "Turn max ms", digits: 2 },
];
const SHARD_KINDS = new Set(["wallet", "checkout"]);

const view = { sort: "processed", descending: true, filter: "", showIdle: false, actors: [] };

export function isIdleShard(actor) {
  return (
    SHARD_KINDS.has(actor.kind) &&
    Number(actor.mailboxDepth ?? 0) === 0 &&
    Number(actor.errors ?? 0) === 0 &&
    Number(actor.overloaded ?? 0) === 0
  );
}

/** Wire the table's header buttons, filter and idle toggle (once, at start). */
export function setupActorsTable(onChange = () => renderActors(view.actors)) {
  const head = $("actors-head");
  head.replaceChildren(
    ...COLUMNS.map((column) => {
      const th = document.createElement("th");
      th.scope = "col";
      if (!column.text) th.className = "num";
      if (column.only) th.className = column.only;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = column.label;
      button.dataset.sort = column.key;
      button.addEventListener("click", () => {
        view.descending = view.sort === column.key ? !view.descending : !column.text;
        view.sort = column.key;
        onChange();
      });
      th.append(button);
      return th;
    }),
  );
  $("actor-filter").addEventListener("input", (event) => {
    view.filter = event.target.value.trim().toLowerCase();
    onChange();
  });
  $("show-idle").addEventListener("change", (event) => {
    view.showIdle = event.target.checked;
    onChange();
  });
}

function row(cells, { key = "", hot = false, summary = false } = {}) {
  const tr = document.createElement("tr");
  tr.dataset.actor = key;
  tr.dataset.hot = String(hot);
  if (summary) tr.className = "summary-row";
  cells.forEach(([text, numeric, only], index) => {
    const cell = document.createElement(index === 0 ? "th" : "td");
    if (index === 0) cell.scope = "row";
    if (numeric) cell.className = "num";
    if (only) cell.className = only;
    cell.textContent = text ?? "—";
    tr.append(cell);
  });
  return tr;
}

/** Draw the actors: [{key, kind, mailboxDepth, mailboxCapacity, processed, ...}]. */
export function renderActors(actors) {
  view.actors = actors;
  const matching = actors.filter((a) => !view.filter || String(a.key).toLowerCase().includes(view.filter));
  const idle = view.showIdle ? [] : matching.filter(isIdleShard);
  const shown = view.showIdle ? matching : matching.filter((a) => !isIdleShard(a));
  const column = COLUMNS.find((c) => c.key === view.sort) ?? COLUMNS[3];
  const sign = view.descending ? -1 : 1;
  shown.sort((a, b) => {
    const left = a[column.key];
    const right = b[column.key];
    const order = column.text
      ? String(left ?? "").localeCompare(String(right ?? ""))
      : Number(left ?? 0) - Number(right ?? 0);
    return sign * order || String(a.key).localeCompare(String(b.key));
  });
  const rows = shown.map((a) => {
    const depth = Number(a.mailboxDepth ?? 0);
    const capacity = a.mailboxCapacity;
    return row(
      [
        [a.key, false],
        [a.kind, false],
        [a.host ?? "—", false, "cluster-only"],
        [capacity ? `${fmt(depth)} / ${fmt(capacity)}` : fmt(depth), true],
        [fmt(a.processed), true],
        [fmt(a.errors), true],
        [fmt(a.overloaded), true],
        [fmt(a.latencyP50Ms, 2), true],
        [fmt(a.latencyP99Ms, 2), true],
        [fmt(a.latencyMaxMs, 2), true],
      ],
      { key: a.key ?? "", hot: capacity ? depth / capacity > 0.5 : depth > 100 },
    );
  });
  if (idle.length) {
    const kinds = [...new Set(idle.map((a) => a.kind))].sort();
    const counts = kinds.map((kind) => `${idle.filter((a) => a.kind === kind).length} ${kind}`);
    const sum = (name) => idle.reduce((total, a) => total + Number(a[name] ?? 0), 0);
    const most = (name) => Math.max(...idle.map((a) => Number(a[name] ?? 0)));
    rows.push(
      row(
        [
          [`${idle.length} idle shards (${counts.join(", ")})`, false],
          ["folded", false],
          ["—", false, "cluster-only"],
          ["0", true],
          [fmt(sum("processed")), true],
          ["0", true],
          ["0", true],
          [`≤ ${fmt(most("latencyP50Ms"), 2)}`, true],
          [`≤ ${fmt(most("latencyP99Ms"), 2)}`, true],
          [`≤ ${fmt(most("latencyMaxMs"), 2)}`, true],
        ],
        { key: "idle-shards", summary: true },
      ),
    );
  }
  $("actors").replaceChildren(...rows);
  for (const button of document.querySelectorAll("#actors-head button.sort")) {
    const active = button.dataset.sort === view.sort;
    button.closest("th").setAttribute("aria-sort", active ? (view.descending ? "descending" : "ascending") : "none");
  }
  $("actors-count").textContent =
    `${shown.length} of ${actors.length} actors shown` + (idle.length ? `, ${idle.length} idle shards folded` : "");
}
