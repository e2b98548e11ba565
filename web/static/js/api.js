// The HTTP side of the contract (docs/design.md): JSON in and out, contract errors as ApiError.

import { observeServerDate } from "./time.js";

/** A refused or failed request. `code` is the contract's error code ("SEAT_TAKEN", ...). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** Worth sending again unchanged (with the same idempotency key): nothing was decided. */
  get retriable() {
    return this.status === 0 || this.status === 503 || this.status >= 500;
  }
}

const CODE_BY_STATUS = {
  400: "VALIDATION_ERROR",
  401: "TOKEN_INVALID",
  402: "INSUFFICIENT_BALANCE",
  404: "NOT_FOUND",
  409: "SEAT_TAKEN",
  413: "VALIDATION_ERROR",
  422: "VALIDATION_ERROR",
  429: "OVERLOADED",
  503: "OVERLOADED",
};

function retryAfterSeconds(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * Send one request. `bearer` goes to Authorization, `idempotencyKey` to Idempotency-Key.
 * Resolves to the parsed JSON body (null when empty); rejects with ApiError.
 */
export async function request(method, path, { body, bearer, idempotencyKey, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const sentAt = Date.now();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    throw new ApiError(0, "NETWORK", "the server could not be reached");
  }
  observeServerDate(response.headers.get("Date"), sentAt, Date.now());
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  const err = data && typeof data === "object" ? data.error : null;
  const code = err?.code || CODE_BY_STATUS[response.status] || "INTERNAL";
  throw new ApiError(
    response.status,
    code,
    err?.message || response.statusText,
    retryAfterSeconds(response.headers.get("Retry-After")),
  );
}

/** A fresh idempotency key (works outside secure contexts too, unlike randomUUID). */
export function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One idempotency key per logical attempt: the same key while the same thing is retried after
 * a network error or an overload (so it can never happen twice), a new one once the server has
 * answered for good or the user asks for something else.
 */
export class IdempotentAction {
  constructor() {
    this.fingerprint = null;
    this.key = null;
  }

  keyFor(fingerprint) {
    if (this.key === null || this.fingerprint !== fingerprint) {
      this.fingerprint = fingerprint;
      this.key = newIdempotencyKey();
    }
    return this.key;
  }

  /** The server decided (success or a refusal): the next attempt is a new action. */
  settled() {
    this.key = null;
    this.fingerprint = null;
  }
}

/** Lists may come bare or wrapped ({items: [...]} / {reservations: [...]}): accept both. */
export function asList(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const key of keys) {
    if (data && Array.isArray(data[key])) return data[key];
  }
  return [];
}
