// Numbers as the dashboard shows them.

/** `value` with `digits` decimals in the reader's locale; "—" when there is none, and a value
 * that is not a number as it is. */
export function formatNumber(value, digits = 0) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
