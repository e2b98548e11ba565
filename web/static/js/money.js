// Money as the buyer and the operator read it: whole units of the service's CURRENCY.
//
// The server names its currency (ISO 4217) in the catalog's and the money's answers; until a
// page has heard it, amounts show as plain numbers rather than in a guessed currency.

let currency = null;

/** Remember the currency the server named (ignored when absent or malformed). */
export function setCurrency(code) {
  if (typeof code === "string" && /^[A-Z]{3}$/.test(code)) currency = code;
}

export function currentCurrency() {
  return currency;
}

/** `amount` (whole units) with its currency: "€120", "US$5", or "120" before one is known. */
export function formatMoney(amount) {
  const n = Number(amount);
  if (amount === null || amount === undefined || !Number.isFinite(n)) return "—";
  if (!currency) return n.toLocaleString();
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency,
      minimumFractionDigits: Number.isInteger(n) ? 0 : 2,
      maximumFractionDigits: 2,
    }).format(n);
  } catch {
    return `${n.toLocaleString()} ${currency}`;
  }
}
