// Named errors of everything that touches Deno KV, so one place (the routes' error mapper) can
// turn them into HTTP statuses: InvalidName 400, NotFound 404, Conflict 409, TooLarge 413,
// Integrity 500.

/** Base class of every error the store raises on purpose; the message is safe to show a user. */
export class StoreError extends Error {
  override name = "StoreError";
}

/** A model name (or another identifier) that can never be valid; nothing was read or written. */
export class InvalidNameError extends StoreError {
  override name = "InvalidNameError";
}

/** An unknown model, or a version that was never published or has been pruned. */
export class NotFoundError extends StoreError {
  override name = "NotFoundError";
}

/** Concurrent writers kept colliding (or a key that must be fresh was already taken). */
export class ConflictError extends StoreError {
  override name = "ConflictError";
}

/** Something to be stored is over a Deno KV limit; the message names the size and the limit. */
export class TooLargeError extends StoreError {
  override name = "TooLargeError";
}

/** A stored model is corrupt or incomplete; the message names the model, version and fault. */
export class IntegrityError extends StoreError {
  override name = "IntegrityError";
}
