// Times from the server and how they are shown.
//
// The server sends instants as ISO-8601 strings; epoch numbers (seconds or milliseconds) are
// tolerated too. Countdowns run against the server's clock, estimated from the HTTP Date header,
// so a browser whose clock is off by minutes still shows the right time left on a hold.

let serverOffsetMs = 0;

/** An instant from the server as milliseconds since the epoch, or null. */
export function toMillis(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number" && Number.isFinite(value)) {
    // Below 1e11 it cannot be milliseconds of any date after 1973: it is seconds.
    return value < 1e11 ? value * 1000 : value;
  }
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (/^\d+(\.\d+)?$/.test(trimmed)) return toMillis(Number(trimmed));
    const ms = Date.parse(trimmed);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/** Now, on the server's clock. */
export function serverNow() {
  return Date.now() + serverOffsetMs;
}

/**
 * Learn the server's clock from a response's Date header (one-second resolution, so only a
 * skew well beyond that is corrected; otherwise it would add jitter).
 */
export function observeServerDate(dateHeader, sentAt, receivedAt) {
  const server = dateHeader ? Date.parse(dateHeader) : NaN;
  if (Number.isNaN(server)) return;
  const local = (sentAt + receivedAt) / 2;
  const offset = server + 500 - local;
  serverOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
}

/** Seconds left until `instant` (any accepted form), never negative; null if unknown. */
export function secondsUntil(instant) {
  const ms = toMillis(instant);
  if (ms === null) return null;
  return Math.max(0, (ms - serverNow()) / 1000);
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function formatCountdown(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A waiting time in plain words. */
export function formatEta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) {
    return "unknown while admission is paused";
  }
  const s = Math.max(0, Number(seconds));
  if (s < 5) return "any moment now";
  if (s < 90) return `about ${Math.round(s)} seconds`;
  if (s < 5400) return `about ${Math.round(s / 60)} minutes`;
  return `about ${(s / 3600).toFixed(1)} hours`;
}

/** A local wall-clock time, e.g. "14:03:27". */
export function formatClock(instant) {
  const ms = toMillis(instant);
  if (ms === null) return "—";
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "2030-01-15" -> "Tue 15 Jan 2030" (dates are calendar days, not instants). */
export function formatDay(isoDay) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDay ?? "");
  if (!match) return String(isoDay ?? "");
  const day = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return day.toLocaleDateString([], {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: "numeric",
  });
}
