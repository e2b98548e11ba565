// The dashboard's cluster card: each shard's host and how it fares, each gateway, from
// GET /admin/cluster.
//
// An embedded server answers `mode: "embedded"` and the card stays hidden; the mode cannot change
// while the page is open, so after that answer the card stops asking.

import { formatNumber as fmt } from "./numbers.js";
import { formatClock } from "./time.js";

const $ = (id) => document.getElementById(id);

let embedded = false;

/** A shard's state in words, so it never rests on colour alone. */
export function shardState(shard) {
  if (!shard.reachable) return "unreachable";
  if (shard.fenced) return "fenced";
  if (!shard.healthy) return "failing";
  return "serving";
}

function row(cells) {
  const tr = document.createElement("tr");
  cells.forEach(([value, numeric], index) => {
    const cell = document.createElement(index === 0 ? "th" : "td");
    if (index === 0) cell.scope = "row";
    if (numeric) cell.className = "num";
    cell.textContent = value;
    tr.append(cell);
  });
  return tr;
}

function shardRow(shard) {
  const state = shardState(shard);
  const perCall = shard.calls > 0 ? shard.commands / shard.calls : null;
  const tr = row([
    [`shard ${shard.shard}`, false],
    [shard.host ?? "—", false],
    [state, false],
    [fmt(shard.epoch), true],
    [fmt(shard.restarts), true],
    [shard.recoverySeconds === null ? "—" : `${fmt(shard.recoverySeconds, 2)} s`, true],
    [shard.startedAt ? formatClock(shard.startedAt) : "—", false],
    [fmt(shard.actors), true],
    [fmt(shard.calls), true],
    [fmt(perCall, 1), true],
  ]);
  tr.dataset.state = state;
  if (shard.error) tr.title = shard.error;
  return tr;
}

function gatewayRow(gateway) {
  return row([
    [`gateway ${gateway.index}`, false],
    [gateway.node, false],
    [fmt(gateway.pid), true],
    [fmt(gateway.port), true],
    [formatClock(gateway.startedAt), false],
    [fmt(gateway.websockets), true],
  ]);
}

/** One line for the card's heading: how many of each, and whether every shard serves. */
export function clusterSummary(view) {
  const serving = view.shards.filter((s) => shardState(s) === "serving").length;
  const nodes = new Set(view.shards.map((s) => (s.host ?? "").split("@")[1]?.split(":")[0]).filter(Boolean));
  const shards = `${view.shards.length} shard${view.shards.length === 1 ? "" : "s"}`;
  const on = nodes.size ? ` on ${nodes.size} node${nodes.size === 1 ? "" : "s"}` : "";
  const gateways = `${view.gateways.length} gateway${view.gateways.length === 1 ? "" : "s"}`;
  const health = serving === view.shards.length ? "all serving" : `${view.shards.length - serving} not serving`;
  return `${shards}${on}, ${gateways}; ${health}`;
}

export function renderCluster(view) {
  const card = $("cluster-card");
  const cluster = view?.mode === "cluster";
  // The actors table's Host column shows only in cluster mode (see .cluster-only).
  document.body.dataset.cluster = String(cluster);
  card.hidden = !cluster;
  if (!cluster) return;
  $("cluster-summary").textContent = clusterSummary(view);
  $("cluster-shards").replaceChildren(...[...view.shards].sort((a, b) => a.shard - b.shard).map(shardRow));
  $("cluster-gateways").replaceChildren(...[...view.gateways].sort((a, b) => a.index - b.index).map(gatewayRow));
}

/** Ask for the cluster's view (unless this server said it is embedded) and draw it. */
export async function refreshCluster(get) {
  if (embedded) return;
  const view = await get("/admin/cluster");
  embedded = view?.mode === "embedded";
  renderCluster(view);
}
