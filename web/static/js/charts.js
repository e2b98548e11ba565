// Live charts of the last 30 minutes, drawn from GET /admin/history as plain SVG (no library,
// no build step): queue length, admissions per minute, holds per second, sales per minute and
// the hold route's p99 latency. A missing figure (no hold in an interval) leaves a gap.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 110;
const PAD = { left: 4, right: 4, top: 16, bottom: 16 };

export const CHARTS = [
  { key: "waiting", title: "Queue length", unit: "" },
  { key: "admissionsPerMinute", title: "Admissions per minute", unit: "/min" },
  { key: "holdsPerSecond", title: "Holds per second", unit: "/s" },
  { key: "salesPerMinute", title: "Sales per minute", unit: "/min" },
  { key: "holdP99Ms", title: "Hold p99 latency", unit: " ms" },
];

function fmt(value) {
  if (value === null || value === undefined) return "—";
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A round number at or above `value`, for the top of a chart's scale. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function element(name, attributes = {}, text = null) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

/** One chart: its figure is made once and redrawn in place at each refresh. */
function chartFigure(root, chart) {
  let figure = root.querySelector(`figure[data-chart="${chart.key}"]`);
  if (figure) return figure;
  figure = document.createElement("figure");
  figure.className = "chart";
  figure.dataset.chart = chart.key;
  const caption = document.createElement("figcaption");
  caption.innerHTML = "<span class='chart-title'></span> <strong class='chart-now'></strong>";
  caption.querySelector(".chart-title").textContent = chart.title;
  const svg = element("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    preserveAspectRatio: "none",
  });
  figure.append(caption, svg);
  root.append(figure);
  return figure;
}

/**
 * Draw every chart from a history answer: {intervalSeconds, windowSeconds, samples: [...]}.
 * `now` (ms) is the right edge; the left edge is the window's start.
 */
export function renderCharts(root, history, now = Date.now()) {
  const samples = Array.isArray(history?.samples) ? history.samples : [];
  const windowMs = Number(history?.windowSeconds ?? 1800) * 1000;
  const start = now - windowMs;
  const x = (at) => PAD.left + ((at - start) / windowMs) * (WIDTH - PAD.left - PAD.right);
  for (const chart of CHARTS) {
    const figure = chartFigure(root, chart);
    const points = samples
      .map((s) => [Date.parse(s.at), s[chart.key]])
      .filter(([at]) => Number.isFinite(at) && at >= start);
    const values = points.map(([, v]) => v).filter((v) => v !== null && v !== undefined);
    const top = niceMax(Math.max(0, ...values));
    const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
    const svg = figure.querySelector("svg");
    svg.replaceChildren(
      element("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "axis" }),
      element("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top), y2: y(top), class: "grid" }),
      element("text", { x: PAD.left, y: PAD.top - 4, class: "scale" }, `${fmt(top)}${chart.unit}`),
      element("text", { x: PAD.left, y: HEIGHT - 3, class: "scale" }, "30 min ago"),
      element("text", { x: WIDTH - PAD.right, y: HEIGHT - 3, class: "scale", "text-anchor": "end" }, "now"),
    );
    // A line per run of known values: a null (no hold answered) breaks it.
    let run = [];
    const runs = [run];
    for (const [at, value] of points) {
      if (value === null || value === undefined) {
        run = [];
        runs.push(run);
      } else {
        run.push(`${x(at).toFixed(1)},${y(value).toFixed(1)}`);
      }
    }
    for (const line of runs.filter((r) => r.length > 0)) {
      const shape =
        line.length === 1
          ? element("circle", { cx: line[0].split(",")[0], cy: line[0].split(",")[1], r: 2, class: "line" })
          : element("polyline", { points: line.join(" "), class: "line" });
      svg.append(shape);
    }
    const latest = values.length ? values[values.length - 1] : null;
    const peak = values.length ? Math.max(...values) : null;
    figure.querySelector(".chart-now").textContent =
      latest === null ? "—" : `${fmt(latest)}${chart.unit}`;
    figure.dataset.points = String(values.length);
    figure.dataset.peak = peak === null ? "" : String(peak);
    svg.setAttribute(
      "aria-label",
      values.length
        ? `${chart.title} over the last 30 minutes: now ${fmt(latest)}${chart.unit}, peak ${fmt(peak)}${chart.unit}`
        : `${chart.title}: no figures yet`,
    );
  }
}
