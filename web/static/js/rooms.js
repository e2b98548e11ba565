// The dashboard's Rooms section: every waiting room (the site-wide one and each concert's own)
// with its figures and live charts of its queue, and pause/resume per room.
//
// A module of its own beside admin.js: it reads the same admin token (this tab's
// sessionStorage) and polls `GET /admin/rooms` while the dashboard is shown.

import { ApiError, request } from "./api.js";
import { formatClock } from "./time.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "cq.adminToken";
const REFRESH_MS = 2000;
const HISTORY = 60; // samples kept per room for its charts (two minutes)

const history = new Map(); // room label -> [{waiting, preQueued, perMinute}]
let timer = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function label(room) {
  return room.concertId ?? "site-wide";
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function seconds(value) {
  return value === null || value === undefined ? "–" : `${fmt(value, 1)} s`;
}

/** A small line chart of `series` (numbers), as SVG. */
function sparkline(series, name) {
  const width = 160;
  const height = 36;
  const top = Math.max(1, ...series);
  const step = series.length > 1 ? width / (series.length - 1) : width;
  const points = series
    .map((value, i) => `${(i * step).toFixed(1)},${(height - (value / top) * (height - 2) - 1).toFixed(1)}`)
    .join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${name}: ${fmt(series.at(-1))} now, ${fmt(top)} at most`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

function cell(text, className = "num") {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  return td;
}

function record(room) {
  const key = label(room);
  const samples = history.get(key) ?? [];
  samples.push({
    waiting: room.waiting + room.preQueued,
    perMinute: room.admittedPerMinute,
  });
  if (samples.length > HISTORY) samples.shift();
  history.set(key, samples);
  return samples;
}

function row(room) {
  const samples = record(room);
  const tr = document.createElement("tr");
  tr.dataset.room = label(room);
  const name = document.createElement("th");
  name.scope = "row";
  name.textContent = label(room);
  const state = document.createElement("span");
  state.className = "badge";
  state.dataset.state = room.state;
  state.textContent = room.state.replace("_", " ");
  name.append(" ", state);
  if (room.onSale) {
    const starts = document.createElement("small");
    starts.textContent = ` starts ${formatClock(room.onSale.startsAt)}`;
    name.append(starts);
  }
  tr.append(
    name,
    cell(fmt(room.waiting)),
    cell(fmt(room.preQueued)),
    cell(fmt(room.admittedPerMinute, 1)),
    cell(`${seconds(room.waitedP50Seconds)} / ${seconds(room.waitedP90Seconds)}`),
    cell(`${fmt(room.left)} / ${fmt(room.abandoned)}`),
    cell(seconds(room.droppedWaitedP50Seconds)),
    cell(room.conversion === null ? "–" : `${fmt(room.conversion * 100, 1)}%`),
  );
  const charts = document.createElement("td");
  charts.className = "charts";
  charts.append(
    sparkline(samples.map((s) => s.waiting), `${label(room)} waiting`),
    sparkline(samples.map((s) => s.perMinute), `${label(room)} admitted per minute`),
  );
  tr.append(charts);
  const actions = document.createElement("td");
  if (room.concertId) {
    const paused = room.state === "paused";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-label", `${paused ? "Resume" : "Pause"} ${room.concertId}`);
    button.addEventListener("click", () => setPaused(room.concertId, !paused));
    actions.append(button);
  }
  tr.append(actions);
  return tr;
}

async function setPaused(concertId, paused) {
  const path = `/admin/rooms/${encodeURIComponent(concertId)}/${paused ? "pause" : "resume"}`;
  await request("POST", path, { bearer: token() }).catch(() => {});
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  const bearer = token();
  const dashboard = $("dashboard");
  if (bearer && dashboard && !dashboard.hidden) {
    try {
      const answer = await request("GET", "/admin/rooms", { bearer });
      $("rooms").replaceChildren(...answer.rooms.map(row));
      $("rooms-updated").textContent = `Rooms updated ${formatClock(Date.now())}`;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      // admin.js reports a refused token and signs out; the next look tries again.
    }
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

refresh();
