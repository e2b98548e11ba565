// Every error code of the contract in plain words, for people rather than programs.

/**
 * What to tell the buyer about `error` (an ApiError or anything thrown).
 * `context` may name the seat or amounts involved to make the sentence concrete.
 */
export function describe(error, context = {}) {
  const code = error?.code ?? "INTERNAL";
  const seat = context.seat !== undefined ? `Seat ${context.seat}` : "That seat";
  switch (code) {
    case "SEAT_TAKEN":
      return context.paying
        ? "One of your seats is already being paid for. Wait a moment and check your seats."
        : `${seat} was just taken by someone else. Please pick another seat.`;
    case "HOLD_LIMIT":
      return "You already hold as many seats as allowed for this date. Pay for them or release one first.";
    case "HOLD_EXPIRED":
      return "Your hold ran out before payment, so the seat went back on sale. No money was taken. Hold it again if it is still free.";
    case "INSUFFICIENT_BALANCE":
      return context.shortBy
        ? `Your balance is too low for these seats: add at least ${context.shortBy} and pay again. Your seats stay held.`
        : "Your balance is too low for these seats. Add money to your balance and pay again. Your seats stay held.";
    case "TOKEN_EXPIRED":
      return "Your shopping time ran out. Join the queue again to continue.";
    case "TOKEN_COMPLETED":
      return "This queue ticket was already used for a purchase. Join the queue again to buy more.";
    case "QUEUE_WAITING":
      return "It is not your turn yet. Please wait in the queue.";
    case "TOKEN_MISSING":
    case "TOKEN_INVALID":
      return "Your queue ticket is no longer recognised. Please join the queue again.";
    case "NOT_OWNER":
      return "That reservation belongs to someone else.";
    case "NOT_FOUND":
      return context.seat !== undefined
        ? `${seat} is no longer held for you (it was released, expired or sold).`
        : "That no longer exists. The page has been refreshed.";
    case "VALIDATION_ERROR":
      return `Please check what you entered: ${error?.message ?? "a value was not accepted"}.`;
    case "BALANCE_LIMIT":
      return "Your balance cannot grow that large. Add a smaller amount.";
    case "DATE_ON_SALE":
      return "That date is already on sale with other seats or price, which cannot change. Leave it out or send it as it is.";
    case "IDEMPOTENCY_CONFLICT":
      return "This request was already sent with different details. Please try again.";
    case "OVERLOADED": {
      const wait = Math.max(1, Math.ceil(error?.retryAfter ?? 1));
      return `The server is overloaded right now. Please retry in ${wait} s.`;
    }
    case "ROOM_NOT_OPEN":
      return "The queue for this on-sale is not open yet. Come back shortly before the sale starts.";
    case "WRONG_ROOM":
      return "Your queue ticket is for another on-sale. Join the queue of this concert to buy its seats.";
    case "CHALLENGE_FAILED":
      return "Your browser check did not go through. Please try joining again.";
    case "TOKEN_LEFT":
      return "You left the queue. Join it again to continue.";
    case "NETWORK":
      return "The server could not be reached. Check your connection; the page keeps trying.";
    case "UNAVAILABLE":
    case "JOURNAL_FAILED":
      return "The server could not save that just now, so it did not happen. Please try again in a moment.";
    default:
      return "Something went wrong on our side. Please try again in a moment.";
  }
}

/** Codes after which the queue ticket is of no more use: the buyer must join again. */
export const TICKET_ENDED = new Set([
  "TOKEN_EXPIRED",
  "TOKEN_COMPLETED",
  "TOKEN_INVALID",
  "TOKEN_MISSING",
  "TOKEN_LEFT",
]);
