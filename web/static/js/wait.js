// The wait on the buyer's page: the estimated wait counted down between the server's pushes,
// and a progress bar from the moment the buyer got a rank until admission.
//
// The server's ETA never rises for a buyer of a concert's room unless the room is paused or
// reconfigured; between two pushes the page counts it down by itself, so it never stays
// frozen. Before an on-sale starts (PRE_QUEUE) the page counts down to the start instead.

import { formatCountdown, formatEta, secondsUntil } from "./time.js";

const $ = (id) => document.getElementById(id);
const TICK_MS = 250;

const wait = {
  status: null,
  eta: null, // seconds, as last told
  toldAt: 0, // performance.now() of that
  longest: null, // the longest wait told since the buyer got a rank: the bar's 0%
  startsAt: null,
};

/** A new view of the buyer's token (from a poll, a join or a push). */
export function showWait({ status, rank, etaSeconds, startsAt }) {
  wait.status = status;
  wait.startsAt = startsAt ?? wait.startsAt;
  wait.eta = etaSeconds ?? null;
  wait.toldAt = performance.now();
  if (wait.eta !== null && (wait.longest === null || wait.eta > wait.longest)) {
    wait.longest = wait.eta;
  }
  $("prequeue-note").hidden = status !== "PRE_QUEUE";
  $("rank").textContent = rank ? String(rank) : status === "PRE_QUEUE" ? "drawn at the start" : "…";
  render();
}

/** Forget the previous turn's wait (a new join). */
export function resetWait() {
  wait.status = wait.eta = wait.longest = wait.startsAt = null;
}

function left() {
  if (wait.eta === null) return null;
  return Math.max(0, wait.eta - (performance.now() - wait.toldAt) / 1000);
}

function render() {
  const countdown = $("wait-countdown");
  const bar = $("wait-progress");
  if (wait.status === "PRE_QUEUE") {
    const toStart = secondsUntil(wait.startsAt);
    $("eta").textContent = "after the start";
    countdown.textContent = toStart === null ? "" : `The sale starts in ${formatCountdown(toStart)}`;
    bar.removeAttribute("value"); // indeterminate until the places are drawn
    return;
  }
  const seconds = left();
  $("eta").textContent = formatEta(seconds);
  countdown.textContent = seconds === null ? "" : `${formatCountdown(seconds)} left`;
  countdown.dataset.seconds = seconds === null ? "" : String(Math.ceil(seconds));
  if (seconds !== null && wait.longest) {
    bar.value = Math.round(100 * (1 - seconds / wait.longest));
  }
}

setInterval(() => {
  if (wait.status) render();
}, TICK_MS);
