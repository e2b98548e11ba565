// A concert's own on-sale on the buyer's page: which room to join, its state before the sale
// starts, and the proof of work its join may ask for (solved in a Web Worker, with progress).
//
// The page is opened for an on-sale as `/?concert=<concertId>`; without it the buyer joins the
// site-wide room, as before.

import { request } from "./api.js";
import { formatClock, formatCountdown, secondsUntil } from "./time.js";

const $ = (id) => document.getElementById(id);
const STATUS_EVERY_MS = 5_000;

export const concertId = new URLSearchParams(location.search).get("concert");

let status = null;
let statusTimer = null;

/** Show the room's state on the join view (and keep it fresh) when the page is for one. */
export async function watchRoom() {
  if (!concertId) return;
  clearTimeout(statusTimer);
  try {
    status = await request("GET", `/api/queue/status?concertId=${encodeURIComponent(concertId)}`);
  } catch {
    status = null; // shown again at the next look
  }
  render();
  statusTimer = setTimeout(watchRoom, STATUS_EVERY_MS);
}

function render() {
  const box = $("onsale");
  if (!status) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.state = status.state;
  const starts = status.startsAt ? formatClock(status.startsAt) : "";
  const left = secondsUntil(status.startsAt);
  const text = {
    not_open: `The queue for this on-sale opens shortly before ${starts}.`,
    pre_queue: `The sale starts at ${starts} (in ${formatCountdown(left ?? 0)}). Everyone who joins before then gets a place drawn at random.`,
    open: "The sale is on: join the queue.",
    paused: "The sale is paused for a moment: you can still join the queue.",
  }[status.state];
  $("onsale-text").textContent = text ?? "";
}

setInterval(() => {
  if (status && status.state === "pre_queue") render();
}, 1000);

/** Solve `challenge` in a Web Worker, showing its progress; resolves to the nonce. */
export function solve(challenge, difficulty) {
  const box = $("pow");
  const bar = $("pow-progress");
  box.hidden = false;
  bar.value = 0;
  $("pow-text").textContent = "Checking your browser before you join…";
  return new Promise((resolve, reject) => {
    const worker = new Worker("/static/js/pow-worker.js");
    worker.onmessage = (event) => {
      const message = event.data;
      if (message.type === "progress") {
        // The work is random: the bar approaches the end but only the answer reaches it.
        const share = 1 - Math.exp(-message.tried / message.expected);
        bar.value = Math.round(share * 95);
        return;
      }
      bar.value = 100;
      $("pow-text").textContent = "Done.";
      worker.terminate();
      resolve(message.nonce);
    };
    worker.onerror = (error) => {
      worker.terminate();
      box.hidden = true;
      reject(error);
    };
    worker.postMessage({ challenge, difficulty });
  });
}

/** The body of a join: with the concert's room and its proof of work if it asks for one. */
export async function joinBody(userId) {
  if (!concertId) return { userId };
  const path = `/api/queue/challenge?concertId=${encodeURIComponent(concertId)}`;
  const issued = await request("GET", path);
  if (issued.difficulty <= 0) return { userId, concertId };
  const nonce = await solve(issued.challenge, issued.difficulty);
  return { userId, concertId, challenge: issued.challenge, nonce };
}

/** Stop watching the room's state (the buyer is in its queue). */
export function stopWatching() {
  clearTimeout(statusTimer);
  statusTimer = null;
  $("pow").hidden = true;
}
