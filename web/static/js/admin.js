// The operator's dashboard: queue, controls, actors and seat maps, refreshed by polling.
//
// Polling rather than a socket: the admin API is plain HTTP and a refresh every 1.5 s is cheap
// next to the rush it watches. The admin token stays in sessionStorage (this tab only).

import { renderActors, setupActorsTable } from "./actors.js";
import { ApiError, asList, request } from "./api.js";
import { renderCharts } from "./charts.js";
import { refreshCluster } from "./cluster.js";
import { describe } from "./errors.js";
import { formatMoney, setCurrency } from "./money.js";
import { formatNumber as fmt } from "./numbers.js";
import { SeatMap } from "./seatmap.js";
import { formatClock, formatDay, secondsUntil, formatCountdown } from "./time.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "cq.adminToken";
const REFRESH_MS = 1500;
const WAITING_ROOM = "waiting-room";

let token = sessionStorage.getItem(TOKEN_KEY);
let timer = null;
let refreshing = false;
let settingsDirty = false;
let lastQueue = null;
const dateViews = new Map(); // actor key -> {details, map, table, summary}

// -- helpers -------------------------------------------------------------------------------

/** The first of `names` that `obj` has (the admin JSON is camelCase; snake_case is tolerated). */
function pick(obj, ...names) {
  if (!obj || typeof obj !== "object") return undefined;
  for (const name of names) {
    if (obj[name] !== undefined) return obj[name];
  }
  return undefined;
}

function admin(method, path, body) {
  return request(method, path, { body, bearer: token });
}

let alertTimer = null;

function showMessage(text, kind = "error") {
  $("alert-text").textContent = text;
  $("alert").dataset.kind = kind;
  $("alert").hidden = false;
  clearTimeout(alertTimer);
  if (kind !== "error") alertTimer = setTimeout(() => ($("alert").hidden = true), 5000);
}

function report(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    signOut("That admin token was refused. Please sign in again.");
    return;
  }
  if (error instanceof ApiError && error.code === "VALIDATION_ERROR") {
    showMessage(`The server refused these settings: ${error.message}.`);
    return;
  }
  showMessage(error instanceof ApiError ? describe(error) : String(error));
}

// -- signing in and out ---------------------------------------------------------------------

function signIn(value) {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("who").hidden = false;
  $("alert").hidden = true;
  refresh();
}

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  timer = null;
  $("dashboard").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  if (message) showMessage(message);
  $("admin-token").focus();
}

// -- refresh ---------------------------------------------------------------------------------

async function refresh() {
  clearTimeout(timer);
  if (!token || refreshing) return;
  refreshing = true;
  try {
    const overview = await admin("GET", "/admin/actors");
    const actors = asList(overview, "actors", "items");
    renderTotals(overview);
    renderQueue(actors.find((a) => pick(a, "key") === WAITING_ROOM || pick(a, "kind") === WAITING_ROOM));
    renderActors(actors);
    await Promise.all([
      renderHistory(),
      refreshCluster((path) => admin("GET", path)),
      renderDates(actors.filter((a) => pick(a, "kind") === "date")),
    ]);
    setConn("live", `updated ${formatClock(Date.now())}`);
    $("updated").textContent = `Last updated ${formatClock(Date.now())}; refreshes every ${REFRESH_MS / 1000} s.`;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      refreshing = false;
      report(error);
      return;
    }
    setConn("polling", "server unreachable, retrying");
  } finally {
    refreshing = false;
  }
  if (token) timer = setTimeout(refresh, REFRESH_MS);
}

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn").textContent = text;
}

// -- totals --------------------------------------------------------------------------------

function renderTotals(overview) {
  const totals = pick(overview, "totals") ?? {};
  const journal = pick(overview, "journal") ?? {};
  setCurrency(pick(overview, "currency"));
  $("t-sold").textContent = fmt(pick(totals, "sold"));
  $("t-held").textContent = fmt(pick(totals, "held"));
  $("t-checkout").textContent = fmt(pick(totals, "checkout"));
  $("t-available").textContent = fmt(pick(totals, "available"));
  $("t-revenue").textContent = formatMoney(pick(totals, "revenue"));
  $("t-websockets").textContent = fmt(pick(overview, "websockets"));
  $("t-commits").textContent = fmt(pick(journal, "commits"));
  const healthy = pick(journal, "healthy") !== false;
  const health = $("t-journal");
  health.dataset.state = healthy ? "ok" : "failing";
  health.textContent = healthy ? "committing" : "FAILING";
  health.title = healthy ? "" : pick(journal, "lastError") ?? "";
}

// -- the waiting room ------------------------------------------------------------------------

function renderQueue(actor) {
  const q = pick(actor, "state", "summary") ?? {};
  lastQueue = q;
  const paused = Boolean(pick(q, "paused"));
  const badge = $("queue-state");
  badge.dataset.state = paused ? "paused" : "running";
  badge.textContent = paused ? "paused" : "running";
  $("pause").disabled = paused;
  $("resume").disabled = !paused;
  $("q-waiting").textContent = fmt(pick(q, "waiting", "queueLength"));
  $("q-active").textContent = fmt(pick(q, "active", "activeUsers"));
  // Per minute: a measured 0.041/s is 2.5/min, not "0.0/s".
  const perMinute = (n) => `${fmt(n, n < 10 ? 1 : 0)}/min`;
  const rate = pick(q, "admissionRate", "admission_rate");
  $("q-rate").textContent = rate === undefined ? "—" : perMinute(rate * 60);
  const batch = pick(q, "batchSize");
  const every = pick(q, "intervalSeconds");
  // What the settings admit (batch size and interval are shown beside it).
  $("q-rate-set").textContent = batch && every ? perMinute((batch * 60) / every) : "—";
  $("q-batch").textContent = fmt(pick(q, "batchSize", "batch_size"));
  const interval = pick(q, "intervalSeconds", "interval_seconds");
  $("q-interval").textContent = interval === undefined ? "—" : `${fmt(interval, 1)} s`;
  const max = pick(q, "maxActive", "max_active");
  $("q-max").textContent = max === null || max === undefined ? "no cap" : fmt(max);
  const ttl = pick(q, "activeTtlSeconds", "active_ttl_seconds");
  $("q-ttl").textContent = ttl === undefined ? "—" : `${fmt(ttl)} s`;
  $("q-admitted").textContent = fmt(pick(q, "admitted"));
  $("q-completed").textContent = fmt(pick(q, "completed"));
  $("q-expired").textContent = fmt(pick(q, "expired"));
  if (!settingsDirty) fillSettings(q);
}

function fillSettings(q) {
  const set = (id, value) => {
    $(id).value = value === null || value === undefined ? "" : String(value);
  };
  set("batch-size", pick(q, "batchSize", "batch_size"));
  set("interval", pick(q, "intervalSeconds", "interval_seconds"));
  set("max-active", pick(q, "maxActive", "max_active"));
  set("ttl", pick(q, "activeTtlSeconds", "active_ttl_seconds"));
}

async function setPaused(paused) {
  const button = $(paused ? "pause" : "resume");
  button.disabled = true;
  try {
    await admin("POST", paused ? "/admin/queue/pause" : "/admin/queue/resume");
    showMessage(paused ? "Admission paused." : "Admission resumed.", "info");
  } catch (error) {
    report(error);
  } finally {
    await refresh();
  }
}

async function applySettings() {
  const changes = {};
  const number = (id, { integer, allowEmpty }) => {
    const raw = $(id).value.trim();
    if (raw === "") return allowEmpty ? null : undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new Error(`${$(id).labels[0].textContent} must be a positive ${integer ? "whole " : ""}number.`);
    }
    return n;
  };
  try {
    const batch = number("batch-size", { integer: true });
    const interval = number("interval", { integer: false });
    const max = number("max-active", { integer: true, allowEmpty: true });
    const ttl = number("ttl", { integer: false });
    const q = lastQueue ?? {};
    // Send only what changed, so two operators do not undo each other's other settings.
    if (batch !== undefined && batch !== pick(q, "batchSize")) changes.batchSize = batch;
    if (interval !== undefined && interval !== pick(q, "intervalSeconds")) changes.intervalSeconds = interval;
    if (max !== undefined && max !== (pick(q, "maxActive") ?? null)) changes.maxActive = max;
    if (ttl !== undefined && ttl !== pick(q, "activeTtlSeconds")) changes.activeTtlSeconds = ttl;
  } catch (error) {
    showMessage(error.message);
    return;
  }
  if (Object.keys(changes).length === 0) {
    showMessage("Nothing to change.", "info");
    settingsDirty = false;
    return;
  }
  try {
    await admin("PATCH", "/admin/queue", changes);
    settingsDirty = false;
    showMessage("Settings applied.", "info");
  } catch (error) {
    report(error);
  }
  await refresh();
}

// -- history: charts, payments refused and failed ------------------------------------------

async function renderHistory() {
  const history = await admin("GET", "/admin/history");
  renderCharts($("charts"), history);
  $("t-refused").textContent = fmt(pick(history, "paymentsRefused"));
  $("t-failed").textContent = fmt(pick(history, "paymentsFailed"));
}

// -- seat maps ---------------------------------------------------------------------------------

function dateView(key, index) {
  let view = dateViews.get(key);
  if (view) return view;
  const details = document.createElement("details");
  details.dataset.actor = key;
  details.open = index < 4; // the first few open: the rest on demand, to keep polling light
  const summary = document.createElement("summary");
  const mapRoot = document.createElement("div");
  mapRoot.setAttribute("role", "group");
  mapRoot.setAttribute("aria-label", "Seats");
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  table.innerHTML =
    "<caption class='sr-only'>Seats not available</caption><thead><tr><th scope='col' class='num'>Seat</th><th scope='col'>Status</th><th scope='col'>Holder</th><th scope='col'>Expires</th><th scope='col'>Payment</th></tr></thead><tbody></tbody>";
  wrap.append(table);
  details.append(summary, mapRoot, wrap);
  details.addEventListener("toggle", () => details.open && refresh());
  $("dates").append(details);
  const map = new SeatMap(mapRoot, {
    describe: (seat) =>
      [seat.holder ? `holder ${seat.holder}` : "", seat.until ? `until ${formatClock(seat.until)}` : ""]
        .filter(Boolean)
        .join(" "),
  });
  view = { details, summary, map, tbody: table.querySelector("tbody") };
  dateViews.set(key, view);
  return view;
}

async function renderDates(actors) {
  const sorted = [...actors].sort((a, b) => String(pick(a, "key")).localeCompare(String(pick(b, "key"))));
  const keys = new Set(sorted.map((a) => pick(a, "key")));
  for (const [key, view] of dateViews) {
    if (!keys.has(key)) {
      view.details.remove();
      dateViews.delete(key);
    }
  }
  const open = [];
  sorted.forEach((actor, index) => {
    const key = pick(actor, "key");
    const view = dateView(key, index);
    const s = pick(actor, "state", "summary") ?? {};
    const [, concertFromKey, dateFromKey] = String(key).split(":");
    const concert = pick(s, "concertId") ?? concertFromKey;
    const date = pick(s, "date") ?? dateFromKey;
    view.summary.textContent =
      `${concert} · ${formatDay(date)} — ${fmt(pick(s, "available"))} free, ${fmt(pick(s, "held"))} held, ` +
      `${fmt(pick(s, "checkout"))} paying, ${fmt(pick(s, "sold"))} sold`;
    if (view.details.open) open.push([key, view]);
  });
  await Promise.all(
    open.map(async ([key, view]) => {
      const detail = await admin("GET", `/admin/actors/${encodeURIComponent(key)}`);
      renderSeats(view, detail);
    }),
  );
}

/** Seats of an actor detail, wherever the server put them. */
function seatsOf(detail) {
  const state = pick(detail, "state") ?? {};
  const raw = pick(detail, "seats") ?? pick(state, "seats") ?? pick(pick(detail, "detail") ?? {}, "seats");
  return asList(raw, "seats").map((s) => ({
    number: Number(pick(s, "number", "seat")),
    status: String(pick(s, "status") ?? "AVAILABLE"),
    holder: pick(s, "userId", "user_id", "holder", "user") ?? null,
    until: pick(s, "expiresAt", "expires_at", "until") ?? null,
    payment: pick(s, "paymentId", "payment_id") ?? null,
  }));
}

function renderSeats(view, detail) {
  const seats = seatsOf(detail);
  view.map.render(seats);
  const taken = seats.filter((s) => s.status !== "AVAILABLE");
  const rows = taken.map((s) => {
    const tr = document.createElement("tr");
    const left = s.until ? secondsUntil(s.until) : null;
    const expires = s.until ? `${formatClock(s.until)} (${formatCountdown(left ?? 0)} left)` : "—";
    for (const [text, cls] of [
      [String(s.number), "num"],
      [s.status.toLowerCase(), ""],
      [s.holder ?? "—", ""],
      [expires, ""],
      [s.payment ?? "—", "payment"],
    ]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 5;
    td.className = "muted";
    td.textContent = "Every seat is available.";
    tr.append(td);
    rows.push(tr);
  }
  view.tbody.replaceChildren(...rows);
}

// -- wiring ----------------------------------------------------------------------------------

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("admin-token").value.trim();
  if (!value) {
    showMessage("Enter the admin token.");
    return;
  }
  $("admin-token").value = "";
  signIn(value);
});

$("sign-out").addEventListener("click", () => signOut());
$("pause").addEventListener("click", () => setPaused(true));
$("resume").addEventListener("click", () => setPaused(false));
$("settings-form").addEventListener("input", () => {
  settingsDirty = true;
});
$("settings-form").addEventListener("submit", (event) => {
  event.preventDefault();
  applySettings();
});
$("alert-close").addEventListener("click", () => ($("alert").hidden = true));

setupActorsTable();
if (token) signIn(token);
else signOut();
