// Two processes on one SQLite KV file (`deno task train` publishing while `deno task start`
// serves, or two servers) can meet SQLite's write lock: the call then throws "database is
// locked" and nothing was written. Such calls are safe to repeat, so they are retried briefly.

const LOCKED = /database is locked|database table is locked|SQLITE_BUSY/i;
const ATTEMPTS = 10;

function isLocked(err: unknown): boolean {
  return err instanceof Error && LOCKED.test(err.message);
}

/**
 * Runs `fn`, retrying with growing random waits while SQLite reports its lock.
 *
 * @param fn the KV call
 * @returns its result
 */
export async function retryWhileLocked<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isLocked(err) || attempt >= ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 5 * 2 ** attempt));
    }
  }
}

/**
 * Wraps a KV store so that reads, writes and atomic commits retry while the SQLite file is
 * locked by another process. A commit that threw the lock error committed nothing, and an
 * atomic operation may be committed again (its checks are evaluated afresh).
 *
 * @param kv a store opened on a local file
 * @returns the same store, with retrying get, getMany, set, delete and atomic().commit()
 */
export function retryingKv(kv: Deno.Kv): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop === "get" || prop === "getMany" || prop === "set" || prop === "delete") {
        return (...args: unknown[]) => retryWhileLocked(() => value.apply(target, args));
      }
      if (prop === "atomic") {
        return () => {
          const op: Deno.AtomicOperation = value.call(target);
          const commit = op.commit.bind(op);
          op.commit = () => retryWhileLocked(commit);
          return op;
        };
      }
      return value.bind(target);
    },
  });
}
