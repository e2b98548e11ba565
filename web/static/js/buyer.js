// The buyer's page: join the queue, wait, pick seats, hold, charge, pay, confirmation.
//
// One page, five views (join, waiting, shop, done, ended). The server is the truth: every view
// is rebuilt from it after a reload (the queue token lives in sessionStorage, so it survives a
// reload in the same tab only) and after a websocket reconnection. "My tickets" is read from
// the server with the latest token this browser had (kept in localStorage, so any tab shows
// them): a COMPLETED token still reads its user's reservations and balance.

import { ApiError, IdempotentAction, asList, request } from "./api.js";
import { TICKET_ENDED, describe } from "./errors.js";
import { LiveChannel } from "./live.js";
import { formatMoney, setCurrency } from "./money.js";
import { concertId as onSaleConcert, joinBody, stopWatching, watchRoom } from "./onsale.js";
import { SeatMap } from "./seatmap.js";
import { resetWait, showWait } from "./wait.js";
import {
  formatCountdown,
  formatDay,
  secondsUntil,
  serverNow,
  toMillis,
} from "./time.js";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "cq.buyer";
const RECEIPT_KEY = "cq.receipt";
const PICK_KEY = "cq.pick";
const TICKETS_KEY = "cq.tickets"; // localStorage: {userId, token} of the latest turn
const USER_ID = /^[A-Za-z0-9_.@-]{1,64}$/;
const HOLD_WARN_SECONDS = 30;

const state = {
  token: null,
  userId: null,
  view: null,
  activeUntil: null,
  concerts: [],
  concertId: null,
  date: null,
  holds: new Map(), // reservationId -> {reservationId, concertId, date, seat, price, expiresAt, ...}
  balance: null,
  busy: new Set(), // seat numbers with a request in flight
  releasing: new Set(), // reservation ids being released: their AVAILABLE event is no expiry
  paying: false, // a payment is in flight: its reply, not the socket, ends the shop
  stage: null, // how far this token got (see STAGES); null until the server told us
  room: null, // the concert whose own room issued the token (it opens that concert only)
};

// A token only moves forward: WAITING -> PROCESSING -> COMPLETED or EXPIRED. A reply can be
// older than a pushed event (a poll sent just before the admission answers just after it), so
// a view from an earlier stage than one already seen is stale and must not move the page back.
const STAGES = { PRE_QUEUE: 0, WAITING: 0, PROCESSING: 1, COMPLETED: 2, EXPIRED: 2, LEFT: 2 };

/** Record that the token reached `status`; false when that is behind what we already know. */
function advance(status) {
  const stage = STAGES[status] ?? STAGES.EXPIRED;
  if (state.stage !== null && stage < state.stage) return false;
  state.stage = stage;
  return true;
}

const chargeAction = new IdempotentAction();
const payAction = new IdempotentAction();

// -- session -------------------------------------------------------------------------------

function loadJson(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}

function saveSession() {
  if (state.token) {
    const owner = JSON.stringify({ token: state.token, userId: state.userId });
    sessionStorage.setItem(SESSION_KEY, owner);
    localStorage.setItem(TICKETS_KEY, owner);
  } else {
    sessionStorage.removeItem(SESSION_KEY);
  }
}

// -- messages ------------------------------------------------------------------------------

let alertTimer = null;
let stillTrue = null; // the shown message's condition: once false, the message goes away

/**
 * Show a message. `whileTrue`, if given, is asked whenever seats, holds or the balance change:
 * a message that stopped being true ("seat 33 is held by someone else") is taken down.
 */
function showMessage(text, kind = "error", { sticky = kind === "error", whileTrue = null } = {}) {
  const box = $("alert");
  $("alert-text").textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
  stillTrue = whileTrue;
  clearTimeout(alertTimer);
  if (!sticky) alertTimer = setTimeout(clearMessage, 8000);
}

function clearMessage() {
  clearTimeout(alertTimer);
  stillTrue = null;
  $("alert").hidden = true;
}

function recheckMessage() {
  if (stillTrue && !$("alert").hidden && !stillTrue()) clearMessage();
}

/** While seat `number` of the date on screen is still not free to hold. */
function seatStillTaken(number) {
  const { concertId, date } = state;
  return () => {
    const seat = seatMap.get(number);
    return state.concertId === concertId && state.date === date && !!seat && seat.status !== "AVAILABLE";
  };
}

/** Show an error in plain words; an ended ticket moves the page to the "ended" view. */
function reportError(error, context = {}, whileTrue = null) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    showMessage(describe(null));
    return;
  }
  if (TICKET_ENDED.has(error.code)) {
    endTurn(error.code);
    return;
  }
  showMessage(describe(error, context), error.code === "OVERLOADED" ? "warn" : "error", {
    whileTrue,
  });
}

// -- the API, as this buyer -------------------------------------------------------------------

function api(method, path, options = {}) {
  return request(method, path, { ...options, bearer: state.token });
}

/** A read that retries by itself after an overload or a network error. */
async function read(path, attempts = 5) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api("GET", path);
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retriable || attempt >= attempts) throw error;
      if (error.code === "OVERLOADED") reportError(error);
      await sleep(1000 * (error.retryAfter ?? attempt));
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- views ---------------------------------------------------------------------------------

const VIEWS = ["join", "waiting", "shop", "done", "ended"];

function show(view) {
  state.view = view;
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  const signedIn = view === "waiting" || view === "shop";
  $("who").hidden = !signedIn;
  $("who-name").textContent = state.userId ?? "";
  document.body.dataset.view = view;
}

function showJoin(prefill = "") {
  live.stop();
  show("join");
  watchRoom();
  const input = $("user-id");
  if (prefill) input.value = prefill;
  input.focus();
}

function showWaiting(view) {
  show("waiting");
  stopWatching();
  updateRank(view.rank, view.etaSeconds, view);
  live.start();
}

function updateRank(rank, etaSeconds, view = {}) {
  showWait({ status: view.status ?? (rank ? "WAITING" : null), rank, etaSeconds, ...view });
  document.title = rank ? `#${rank} in the queue · concert-queue` : "Tickets · concert-queue";
}

function endTurn(code) {
  const words = {
    TOKEN_EXPIRED:
      "Your shopping time ran out. Seats you held but did not pay for went back on sale; no money was taken for them.",
    TOKEN_COMPLETED: "This queue ticket was used for a purchase: your tickets are below.",
    TOKEN_INVALID: "Your queue ticket is no longer recognised (the server may have been reset).",
    TOKEN_MISSING: "Your queue ticket is no longer recognised.",
    TOKEN_LEFT: "You left the queue.",
    ABANDONED:
      "You lost your place because this page was closed or offline for too long. Join the queue again.",
  };
  live.stop();
  clearMessage();
  state.token = null;
  state.activeUntil = null;
  saveSession();
  show("ended");
  resetShop();
  $("ended-text").textContent = words[code] ?? words.TOKEN_EXPIRED;
  $("ended-title").focus();
  document.title = "Tickets · concert-queue";
  loadTickets();
}

/** Move to whichever view the token's status calls for. */
async function route(view) {
  if (!advance(view.status)) return;
  state.userId = view.userId ?? state.userId;
  state.activeUntil = view.activeUntil ?? null;
  state.room = view.concertId ?? null;
  saveSession();
  switch (view.status) {
    case "PRE_QUEUE":
    case "WAITING":
      if (state.view !== "waiting") showWaiting(view);
      else updateRank(view.rank, view.etaSeconds, view);
      break;
    case "PROCESSING":
      if (state.view !== "shop") await enterShop();
      break;
    case "COMPLETED":
      if (state.paying) break; // our own payment: its reply shows the receipt
      if (loadJson(RECEIPT_KEY)) showDone(loadJson(RECEIPT_KEY));
      else endTurn("TOKEN_COMPLETED"); // paid in another tab: "My tickets" shows what
      break;
    case "LEFT":
      endTurn("TOKEN_LEFT");
      break;
    default:
      endTurn(view.reason === "abandoned" ? "ABANDONED" : "TOKEN_EXPIRED");
  }
}

// -- joining -------------------------------------------------------------------------------

async function join(userId) {
  clearMessage();
  if (!USER_ID.test(userId)) {
    showMessage("A user id is 1 to 64 letters, digits or _ . @ - (no spaces).");
    $("user-id").focus();
    return;
  }
  const button = $("join");
  button.disabled = true;
  try {
    const body = await joinBody(userId); // a concert's room may ask for a proof of work
    const view = await request("POST", "/api/queue/tokens", { body });
    state.token = view.token;
    state.stage = null; // a new turn: its stages start again
    resetWait();
    state.userId = view.userId ?? userId;
    sessionStorage.removeItem(RECEIPT_KEY);
    saveSession();
    await route(view);
  } catch (error) {
    reportError(error);
  } finally {
    button.disabled = false;
  }
}

async function refreshMe() {
  const token = state.token;
  if (!token) return null; // the turn already ended: nothing to ask
  const view = await api("GET", "/api/queue/tokens/me");
  if (state.token === token) await route(view); // else the page moved on to another turn
  return view;
}

// -- live events ---------------------------------------------------------------------------

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

// The token travels as a subprotocol, never in the URL (URLs end up in logs).
function wsProtocols() {
  return ["concert-queue", `token.${state.token ?? ""}`];
}

function onLiveState(connection) {
  const conn = $("conn");
  conn.dataset.state = connection;
  conn.textContent = {
    connecting: "connecting…",
    live: "live",
    polling: "reconnecting (updates every 2 s)",
    stopped: "offline",
  }[connection];
}

function onEvent(event) {
  switch (event.type) {
    case "queue.rank":
      if (state.view === "waiting") updateRank(event.rank, event.etaSeconds, { status: "WAITING" });
      break;
    case "queue.admitted":
      advance("PROCESSING");
      state.activeUntil = event.activeUntil ?? state.activeUntil;
      if (state.view === "waiting") enterShop();
      break;
    case "queue.expired":
      // While waiting, only an abandoned place expires.
      endTurn(state.view === "waiting" ? "ABANDONED" : "TOKEN_EXPIRED");
      break;
    case "queue.completed":
      // Paid here (the payment's reply shows the receipt) or in another tab: ask the server.
      if (state.view !== "done" && !state.paying) refreshMe().catch(reportError);
      loadTickets();
      break;
    case "seat.changed":
      onSeatChanged(event);
      break;
    case "hold.expiring":
      onHoldExpiring(event);
      break;
    case "hold.expired":
      removeHold(event.reservationId, "expired");
      break;
    case "error":
      console.warn("server says:", event.message ?? event);
      break;
    default:
      break;
  }
}

/** While the socket is down: the same information, pulled. */
async function poll() {
  if (!state.token) return;
  try {
    await refreshMe();
    if (state.view === "shop") await resyncShop();
  } catch (error) {
    if (error instanceof ApiError && !error.retriable) reportError(error);
  }
}

const live = new LiveChannel({
  url: wsUrl,
  protocols: wsProtocols,
  onEvent,
  onState: onLiveState,
  poll,
  onOpen: () => {
    // Whatever happened while we were away is not replayed: fetch it.
    poll();
  },
});

// -- the shop: concerts, dates, seats --------------------------------------------------------

const seatMap = new SeatMap($("seat-map"), {
  onPick: (seat) => onSeatPicked(seat),
  describe: (seat) =>
    seat.price !== undefined && seat.status === "AVAILABLE" ? `price ${formatMoney(seat.price)}` : "",
});

function resetShop() {
  if (state.concertId && state.date) live.unsubscribe(state.concertId, state.date);
  state.holds.clear();
  state.busy.clear();
  state.concertId = null;
  state.date = null;
  renderHolds();
}

async function enterShop() {
  show("shop");
  clearMessage();
  document.title = "Pick your seats · concert-queue";
  live.start();
  try {
    const listed = asList(await read("/api/concerts"), "concerts", "items");
    // A token of a concert's own room opens that concert alone (WRONG_ROOM elsewhere).
    // A site-wide token opens every concert without a room of its own, none with one.
    const concerts = listed.filter((c) => (state.room ? c.concertId === state.room : !c.ownRoom));
    state.concerts = concerts;
    setCurrency(listed[0]?.currency);
    const select = $("concert");
    select.replaceChildren(
      ...concerts.map((c) => new Option(c.venue ? `${c.title} · ${c.venue}` : c.title, c.concertId)),
    );
    const saved = loadJson(PICK_KEY);
    const concertId = concerts.some((c) => c.concertId === saved?.concertId)
      ? saved.concertId
      : concerts[0]?.concertId;
    if (concertId) {
      select.value = concertId;
      await chooseConcert(concertId, saved?.date);
    }
    await Promise.all([loadReservations(), loadBalance()]);
    loadTickets();
    $("concert").focus();
  } catch (error) {
    reportError(error);
  }
}

async function chooseConcert(concertId, preferredDate) {
  const dates = asList(
    await read(`/api/concerts/${encodeURIComponent(concertId)}/dates`),
    "dates",
    "items",
  );
  const select = $("date");
  select.replaceChildren(
    ...dates.map((d) => {
      const option = new Option(dateLabel(d.date, d.availableSeats, d.totalSeats, d.price), d.date);
      option.dataset.total = String(d.totalSeats);
      option.dataset.price = String(d.price);
      return option;
    }),
  );
  if (dates.length === 0) {
    select.append(new Option("No date with free seats", ""));
    select.disabled = true;
    switchDate(concertId, null);
    $("seat-count").textContent = "Every date of this concert is sold out.";
    return;
  }
  select.disabled = false;
  const date = dates.some((d) => d.date === preferredDate) ? preferredDate : dates[0].date;
  select.value = date;
  await switchDate(concertId, date);
}

function dateLabel(date, free, total, price) {
  const cost = price === undefined ? "" : ` · ${formatMoney(price)}`;
  return `${formatDay(date)}${cost} · ${free} of ${total} free`;
}

async function switchDate(concertId, date) {
  if (state.concertId && state.date) live.unsubscribe(state.concertId, state.date);
  state.concertId = concertId;
  state.date = date;
  sessionStorage.setItem(PICK_KEY, JSON.stringify({ concertId, date }));
  if (!date) {
    seatMap.render([]);
    return;
  }
  // Subscribe first, then read: a change between the two is then seen twice, never missed.
  live.subscribe(concertId, date);
  await loadSeats();
}

async function loadSeats() {
  const { concertId, date } = state;
  if (!concertId || !date) return;
  const data = await read(
    `/api/concerts/${encodeURIComponent(concertId)}/dates/${encodeURIComponent(date)}/seats`,
  );
  if (state.concertId !== concertId || state.date !== date) return; // the buyer moved on
  const seats = asList(data?.seats ?? data, "seats").map((s) => ({
    number: s.number,
    status: s.status,
    price: s.price,
    mine: isMine(s.number, s.status),
  }));
  seatMap.render(seats);
  updateSeatCount();
}

function isMine(number, status = "HELD") {
  if (status !== "HELD" && status !== "CHECKOUT") return false;
  for (const hold of state.holds.values()) {
    if (hold.concertId === state.concertId && hold.date === state.date && hold.seat === number) {
      return true;
    }
  }
  return false;
}

function updateSeatCount() {
  const seats = seatMap.all();
  const free = seats.filter((s) => s.status === "AVAILABLE").length;
  $("seat-count").textContent = `${free} of ${seats.length} seats free.`;
  const option = $("date").selectedOptions[0];
  if (option && option.value === state.date) {
    option.textContent = dateLabel(state.date, free, seats.length, option.dataset.price);
  }
}

function onSeatChanged(event) {
  if (event.concertId !== state.concertId || event.date !== state.date) return;
  const seat = Number(event.seat);
  const mineBefore = seatMap.get(seat)?.mine;
  seatMap.update(seat, { status: event.status, mine: isMine(seat, event.status) }, { flash: true });
  updateSeatCount();
  recheckMessage();
  // A hold of ours that the server put back on sale has ended, whatever we thought.
  if (event.status === "AVAILABLE" && mineBefore) {
    for (const hold of state.holds.values()) {
      const same = hold.concertId === event.concertId && hold.date === event.date;
      if (same && hold.seat === seat) {
        removeHold(hold.reservationId, state.releasing.has(hold.reservationId) ? "released" : "expired");
      }
    }
  }
}

async function resyncShop() {
  await Promise.all([loadSeats(), loadReservations(), loadBalance()]);
}

// -- holds -----------------------------------------------------------------------------------

async function onSeatPicked(seat) {
  if (state.busy.has(seat.number)) return;
  if (seat.mine) {
    const hold = [...state.holds.values()].find(
      (h) => h.concertId === state.concertId && h.date === state.date && h.seat === seat.number,
    );
    if (hold) await release(hold);
    return;
  }
  if (seat.status !== "AVAILABLE") {
    const words = { HELD: "is held by someone else", CHECKOUT: "is being paid for", SOLD: "is sold" };
    const taken = seatMap.get(seat.number)?.status;
    showMessage(`Seat ${seat.number} ${words[seat.status] ?? "is taken"}. Please pick a free seat.`, "warn", {
      // True while the seat stays as it was said to be (a release or a sale changes it).
      whileTrue: () => seatStillTaken(seat.number)() && seatMap.get(seat.number)?.status === taken,
    });
    return;
  }
  await hold(seat.number);
}

async function hold(number) {
  const { concertId, date } = state;
  state.busy.add(number);
  seatMap.buttons.get(number)?.setAttribute("aria-busy", "true");
  try {
    const reservation = await api("POST", "/api/reservations", {
      body: { concertId, date, seat: number },
    });
    clearMessage();
    addHold({ concertId, date, seat: number, ...reservation });
    showMessage(`Seat ${number} is held for you. Pay before the countdown ends.`, "info", {
      whileTrue: () => [...state.holds.values()].some((h) => h.seat === number && h.date === date),
    });
  } catch (error) {
    if (error instanceof ApiError && error.code === "SEAT_TAKEN" && state.date === date) {
      seatMap.update(number, { status: "HELD", mine: false }, { flash: true });
      updateSeatCount();
    }
    const taken = error instanceof ApiError && error.code === "SEAT_TAKEN";
    reportError(error, { seat: number }, taken ? seatStillTaken(number) : null);
  } finally {
    state.busy.delete(number);
    seatMap.buttons.get(number)?.removeAttribute("aria-busy");
  }
}

async function release(held) {
  state.busy.add(held.seat);
  state.releasing.add(held.reservationId);
  try {
    await api("DELETE", `/api/reservations/${encodeURIComponent(held.reservationId)}`);
    removeHold(held.reservationId, "released");
  } catch (error) {
    if (error instanceof ApiError && (error.code === "NOT_FOUND" || error.code === "HOLD_EXPIRED")) {
      removeHold(held.reservationId, "expired");
    } else {
      reportError(error, { seat: held.seat });
    }
  } finally {
    state.busy.delete(held.seat);
    state.releasing.delete(held.reservationId);
  }
}

function addHold(reservation) {
  const hold = {
    reservationId: reservation.reservationId,
    concertId: reservation.concertId,
    date: reservation.date,
    seat: Number(reservation.seat),
    price: Number(reservation.price ?? 0),
    status: reservation.status ?? "HELD",
    expiresAt: toMillis(reservation.expiresAt),
    heldAt: serverNow(),
    expiring: false,
  };
  const known = state.holds.get(hold.reservationId);
  if (known) hold.heldAt = known.heldAt;
  state.holds.set(hold.reservationId, hold);
  if (hold.concertId === state.concertId && hold.date === state.date) {
    seatMap.update(hold.seat, { status: hold.status, mine: true });
    updateSeatCount();
  }
  renderHolds();
}

/** Forget a hold; `why` is "released", "expired" or "paid". */
function removeHold(reservationId, why) {
  const hold = state.holds.get(reservationId);
  if (!hold) return;
  state.holds.delete(reservationId);
  payAction.settled();
  if (hold.concertId === state.concertId && hold.date === state.date) {
    const seat = seatMap.get(hold.seat);
    const status = why === "paid" ? "SOLD" : why === "released" ? "AVAILABLE" : seat?.status;
    seatMap.update(hold.seat, { status: status ?? "AVAILABLE", mine: false });
    updateSeatCount();
  }
  renderHolds();
  if (why === "expired") {
    showMessage(
      `Your hold on seat ${hold.seat} expired, so it went back on sale. No money was taken.`,
      "warn",
      { sticky: true },
    );
  } else if (why === "released") {
    showMessage(`Seat ${hold.seat} released.`, "info");
  }
}

async function loadReservations() {
  const data = await read("/api/reservations");
  const current = asList(data, "reservations", "items").filter(
    (r) => r.status === "HELD" || r.status === "CHECKOUT",
  );
  const ids = new Set(current.map((r) => r.reservationId));
  for (const id of [...state.holds.keys()]) {
    if (!ids.has(id)) removeHold(id, "expired");
  }
  for (const reservation of current) addHold(reservation);
}

function onHoldExpiring(event) {
  const hold = state.holds.get(event.reservationId);
  if (!hold) return;
  hold.expiring = true;
  const left = Number(event.secondsLeft);
  if (Number.isFinite(left)) {
    const pushed = serverNow() + left * 1000;
    if (hold.expiresAt === null || Math.abs(pushed - hold.expiresAt) > 2000) hold.expiresAt = pushed;
  }
  renderHolds();
  showMessage(
    `Your hold on seat ${hold.seat} ends in ${Math.ceil(secondsUntil(hold.expiresAt) ?? left)} s: pay now to keep it.`,
    "warn",
    { sticky: true, whileTrue: () => state.holds.has(event.reservationId) },
  );
}

function concertTitle(concertId) {
  return state.concerts.find((c) => c.concertId === concertId)?.title ?? concertId;
}

function renderHolds() {
  const list = $("holds");
  const holds = [...state.holds.values()].sort(
    (a, b) => a.date.localeCompare(b.date) || a.seat - b.seat,
  );
  list.replaceChildren(
    ...holds.map((hold) => {
      const li = document.createElement("li");
      li.className = "hold";
      li.dataset.reservation = hold.reservationId;
      li.dataset.seat = String(hold.seat);
      const what = document.createElement("div");
      what.innerHTML = "<strong></strong><br /><span class='muted'></span>";
      what.querySelector("strong").textContent = `Seat ${hold.seat} · ${formatMoney(hold.price)}`;
      what.querySelector("span").textContent =
        `${concertTitle(hold.concertId)} · ${formatDay(hold.date)}`;
      const side = document.createElement("div");
      const countdown = document.createElement("span");
      countdown.className = "countdown";
      countdown.setAttribute("role", "timer");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "danger";
      button.textContent = "Release";
      button.setAttribute("aria-label", `Release seat ${hold.seat}`);
      button.disabled = hold.status === "CHECKOUT";
      button.addEventListener("click", () => release(hold));
      side.append(countdown, " ", button);
      const track = document.createElement("div");
      track.className = "bar-track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      track.append(fill);
      li.append(what, side, track);
      return li;
    }),
  );
  $("no-holds").hidden = holds.length > 0;
  const total = holds.reduce((sum, h) => sum + h.price, 0);
  $("total").textContent = formatMoney(total);
  $("pay").textContent =
    holds.length === 0
      ? "Pay"
      : `Pay ${formatMoney(total)} for ${holds.length} seat${holds.length === 1 ? "" : "s"}`;
  updatePay();
  suggestAmount();
  recheckMessage();
  tick();
}

/** Pay is enabled only when it can succeed as far as the page knows, else it says why not. */
function updatePay() {
  const holds = [...state.holds.values()];
  const total = holds.reduce((sum, h) => sum + h.price, 0);
  const missing = total - (state.balance ?? total);
  let reason = "";
  if (holds.length === 0) reason = "Hold a seat to pay for it.";
  else if (missing > 0) reason = `Add ${formatMoney(missing)} to your balance to pay.`;
  else if (holds.some((h) => h.status === "CHECKOUT")) reason = "Your payment is being made.";
  $("pay").disabled = state.paying || reason !== "";
  $("pay-reason").textContent = reason;
}

// -- countdowns ------------------------------------------------------------------------------

let windowCheckedFor = null;

function tick() {
  for (const li of $("holds").children) {
    const hold = state.holds.get(li.dataset.reservation);
    if (!hold) continue;
    const left = secondsUntil(hold.expiresAt);
    const countdown = li.querySelector(".countdown");
    if (hold.status === "CHECKOUT") {
      countdown.textContent = "being paid";
      continue;
    }
    if (left === null) {
      countdown.textContent = "held";
      continue;
    }
    countdown.textContent = `${formatCountdown(left)} left`;
    countdown.setAttribute("aria-label", `${Math.ceil(left)} seconds left on seat ${hold.seat}`);
    const span = Math.max(1, hold.expiresAt - hold.heldAt);
    li.querySelector(".bar-fill").style.width = `${Math.min(100, (left * 1000 * 100) / span)}%`;
    li.dataset.expiring = String(hold.expiring || left <= HOLD_WARN_SECONDS);
    if (left <= 0) {
      // The server expires it at this instant too; its event or a resync confirms.
      removeHold(hold.reservationId, "expired");
      return;
    }
  }
  if (state.view === "shop" && state.activeUntil) {
    const left = secondsUntil(state.activeUntil);
    $("window-left").textContent = left === null ? "…" : formatCountdown(left);
    $("window").dataset.low = String(left !== null && left < 60);
    if (left === 0 && windowCheckedFor !== state.activeUntil) {
      windowCheckedFor = state.activeUntil; // ask once; the answer moves the page on
      refreshMe().catch(reportError);
    }
  }
}

setInterval(tick, 250);

// -- money ---------------------------------------------------------------------------------

async function loadBalance() {
  const data = await read("/api/balance");
  setCurrency(data?.currency);
  setBalance(data?.balance);
}

function setBalance(balance) {
  state.balance = Number.isFinite(Number(balance)) ? Number(balance) : null;
  $("balance").textContent = state.balance === null ? "…" : formatMoney(state.balance);
  updatePay();
  suggestAmount();
  recheckMessage();
}

/** Offer to add exactly what is missing, unless the buyer is typing an amount. */
function suggestAmount() {
  const input = $("amount");
  if (document.activeElement === input) return;
  const total = [...state.holds.values()].reduce((sum, h) => sum + h.price, 0);
  const missing = total - (state.balance ?? 0);
  input.value = missing > 0 ? String(missing) : "";
}

async function charge() {
  const input = $("amount");
  const amount = Number(input.value);
  if (!Number.isInteger(amount) || amount < 1 || amount > 1_000_000_000) {
    showMessage("Enter a whole amount from 1 to 1,000,000,000 to add to your balance.");
    input.focus();
    return;
  }
  const button = $("charge");
  button.disabled = true;
  try {
    const data = await api("POST", "/api/balance/charge", {
      body: { amount },
      idempotencyKey: chargeAction.keyFor(String(amount)),
    });
    chargeAction.settled();
    input.value = "";
    setCurrency(data.currency);
    setBalance(data.balance);
    showMessage(`Added ${formatMoney(amount)} to your balance.`, "info");
  } catch (error) {
    if (!(error instanceof ApiError) || !error.retriable) chargeAction.settled();
    reportError(error);
  } finally {
    button.disabled = false;
  }
}

async function pay() {
  const holds = [...state.holds.values()];
  if (holds.length === 0) return;
  const ids = holds.map((h) => h.reservationId).sort();
  const total = holds.reduce((sum, h) => sum + h.price, 0);
  const button = $("pay");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  state.paying = true;
  try {
    const payment = await api("POST", "/api/payments", {
      body: { reservationIds: ids },
      idempotencyKey: payAction.keyFor(ids.join(",")),
    });
    payAction.settled();
    const bought = asList(payment.reservations, "reservations");
    const seats = bought.length && typeof bought[0] === "object" ? bought : holds;
    const receipt = {
      userId: state.userId,
      paymentId: payment.paymentId,
      amount: payment.amount ?? total,
      balance: payment.balance,
      seats: seats.map((r) => ({
        concertId: r.concertId,
        title: concertTitle(r.concertId),
        date: r.date,
        seat: Number(r.seat),
        price: r.price,
      })),
    };
    sessionStorage.setItem(RECEIPT_KEY, JSON.stringify(receipt));
    for (const id of ids) removeHold(id, "paid");
    state.token = null; // the ticket is used up: a reload shows the receipt, not the queue
    saveSession();
    showDone(receipt);
  } catch (error) {
    if (!(error instanceof ApiError) || !error.retriable) payAction.settled();
    if (error instanceof ApiError && error.code === "INSUFFICIENT_BALANCE") {
      const stillShort = () => state.holds.size > 0 && (state.balance ?? 0) < total;
      reportError(error, { shortBy: formatMoney(Math.max(1, total - (state.balance ?? 0))) }, stillShort);
      loadBalance().catch(() => {});
      $("amount").focus();
    } else if (error instanceof ApiError && ["HOLD_EXPIRED", "NOT_FOUND"].includes(error.code)) {
      reportError(error);
      loadReservations().catch(() => {});
      loadSeats().catch(() => {});
    } else {
      reportError(error, { paying: true });
    }
  } finally {
    state.paying = false;
    button.removeAttribute("aria-busy");
    updatePay();
  }
}

// -- confirmation --------------------------------------------------------------------------

function showDone(receipt) {
  live.stop();
  state.activeUntil = null;
  show("done");
  resetShop();
  clearMessage();
  const seats = [...receipt.seats].sort((a, b) => a.date.localeCompare(b.date) || a.seat - b.seat);
  const places = [...new Set(seats.map((s) => `${s.title} on ${formatDay(s.date)}`))];
  $("done-summary").textContent =
    `${seats.length} seat${seats.length === 1 ? "" : "s"} for ${receipt.userId}: ${places.join(", ")}.`;
  $("done-seats").replaceChildren(
    ...seats.map((s) => {
      const li = document.createElement("li");
      li.textContent = `Seat ${s.seat}`;
      li.title = `${s.title}, ${formatDay(s.date)}`;
      return li;
    }),
  );
  $("done-amount").textContent = formatMoney(receipt.amount);
  $("done-balance").textContent = receipt.balance === undefined ? "—" : formatMoney(receipt.balance);
  $("done-payment").textContent = receipt.paymentId ?? "—";
  document.title = "Booked · concert-queue";
  $("done-title").focus();
  loadTickets();
}

// -- my tickets ------------------------------------------------------------------------------

let ticketsAsked = 0;

/** "My tickets": every seat this browser's latest user bought, read from the server. */
async function loadTickets() {
  const owner = state.token ? { token: state.token, userId: state.userId } : loadLocal(TICKETS_KEY);
  const asked = ++ticketsAsked;
  if (!owner?.token) {
    $("my-tickets").hidden = true;
    return;
  }
  const get = (path) => request("GET", path, { bearer: owner.token });
  try {
    const [reservations, concerts, balance] = await Promise.all([
      get("/api/reservations"),
      get("/api/concerts"),
      get("/api/balance"),
    ]);
    if (asked !== ticketsAsked) return; // a newer read is on its way
    setCurrency(balance?.currency);
    renderTickets(owner.userId, asList(reservations, "reservations"), asList(concerts, "concerts"), balance);
  } catch (error) {
    if (error instanceof ApiError && (error.code === "TOKEN_INVALID" || error.code === "TOKEN_MISSING")) {
      localStorage.removeItem(TICKETS_KEY); // the server no longer knows it (reset)
    }
    if (asked === ticketsAsked) $("my-tickets").hidden = true;
  }
}

function loadLocal(key) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}

function renderTickets(userId, reservations, concerts, balance) {
  const sold = reservations
    .filter((r) => r.status === "SOLD")
    .sort((a, b) => a.date.localeCompare(b.date) || a.seat - b.seat);
  const byId = new Map(concerts.map((c) => [c.concertId, c]));
  $("tickets").replaceChildren(
    ...sold.map((r) => {
      const concert = byId.get(r.concertId);
      const li = document.createElement("li");
      li.className = "ticket";
      li.dataset.seat = String(r.seat);
      li.dataset.reservation = r.reservationId;
      const title = document.createElement("strong");
      title.textContent = concert ? concert.title : r.concertId;
      const where = document.createElement("span");
      where.textContent = [concert?.venue, formatDay(r.date)].filter(Boolean).join(" · ");
      const seat = document.createElement("span");
      seat.className = "ticket-seat";
      seat.textContent = `Seat ${r.seat} · ${formatMoney(r.price)}`;
      const ref = document.createElement("span");
      ref.className = "muted";
      ref.textContent = `Payment ${r.paymentId ?? "—"}`;
      li.append(title, where, seat, ref);
      return li;
    }),
  );
  $("tickets-who").textContent = `Bought by ${userId ?? "you"}.`;
  $("tickets-balance").textContent = formatMoney(balance?.balance);
  $("my-tickets").hidden = sold.length === 0;
}

// -- wiring ----------------------------------------------------------------------------------

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join($("user-id").value.trim());
});

$("concert").addEventListener("change", (event) => {
  chooseConcert(event.target.value).catch(reportError);
});

$("date").addEventListener("change", (event) => {
  switchDate(state.concertId, event.target.value).catch(reportError);
});

$("charge-form").addEventListener("submit", (event) => {
  event.preventDefault();
  charge();
});

$("pay").addEventListener("click", () => pay());
$("alert-close").addEventListener("click", clearMessage);

$("leave").addEventListener("click", async () => {
  // Give held seats back at once rather than making others wait for them to expire.
  const holds = [...state.holds.values()].filter((h) => h.status === "HELD");
  await Promise.allSettled(
    holds.map((h) => api("DELETE", `/api/reservations/${encodeURIComponent(h.reservationId)}`)),
  );
  // Give the place back too: everyone behind moves up at once.
  await api("DELETE", "/api/queue/tokens/me").catch(() => {});
  const userId = state.userId;
  live.stop();
  resetShop();
  state.token = null;
  saveSession();
  clearMessage();
  showJoin(userId);
});

$("leave-queue").addEventListener("click", () => $("leave").click());

for (const id of ["again", "rejoin"]) {
  $(id).addEventListener("click", () => {
    const userId = state.userId ?? loadJson(RECEIPT_KEY)?.userId;
    if (userId) join(userId);
    else showJoin();
  });
}

async function boot() {
  const saved = loadJson(SESSION_KEY);
  if (saved?.token) {
    state.token = saved.token;
    state.userId = saved.userId;
    try {
      await refreshMe();
    } catch (error) {
      if (error instanceof ApiError && TICKET_ENDED.has(error.code)) {
        endTurn(error.code);
      } else {
        // The server is unreachable for now: wait in the queue view and let polling catch up.
        show("waiting");
        updateRank(null, null);
        reportError(error);
        live.start();
      }
    }
    return;
  }
  const receipt = loadJson(RECEIPT_KEY);
  if (receipt) {
    state.userId = receipt.userId;
    showDone(receipt);
    return;
  }
  showJoin(loadLocal(TICKETS_KEY)?.userId ?? "");
  loadTickets();
}

boot();
