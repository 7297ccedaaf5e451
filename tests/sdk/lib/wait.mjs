// Waiting with deadlines. Nothing here sleeps to decide an outcome: every wait ends as soon as
// the awaited thing happens and fails with a clear message when the deadline passes first.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function withDeadline(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls fn (sync or async) until it returns a truthy value; returns that value. `what` may be a
 * function: it is called at the deadline, so the message tells the state then. */
export async function waitUntil(fn, { timeout = 10000, interval = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${typeof what === "function" ? what() : what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

/** Records events by kind; wait() returns the first matching one, past or future. */
export class Recorder {
  constructor(name = "recorder") {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }

  push(kind, value) {
    this.items.push({ kind, value });
    for (const w of [...this.waiters]) {
      if (w.kind === kind && w.pred(value)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(value);
      }
    }
  }

  all(kind) {
    return this.items.filter((i) => i.kind === kind).map((i) => i.value);
  }

  wait(kind, pred = () => true, timeout = 10000) {
    const found = this.items.find((i) => i.kind === kind && pred(i.value));
    if (found) return Promise.resolve(found.value);
    return new Promise((resolve, reject) => {
      const w = { kind, pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const seen = this.items.map((i) => `${i.kind}:${safe(i.value)}`).slice(-10);
        reject(new Error(`${this.name}: timed out after ${timeout} ms waiting for "${kind}"; last events: ${seen.join(" | ") || "(none)"}`));
      }, timeout);
      this.waiters.push(w);
    });
  }
}

function safe(v) {
  try {
    const s = JSON.stringify(v, (k, x) => (x instanceof ArrayBuffer ? `ArrayBuffer(${x.byteLength})` : x));
    return s && s.length > 200 ? `${s.slice(0, 200)}...` : s;
  } catch {
    return String(v);
  }
}

/**
 * Runs an SDK call with an onResponse hook and returns {status, error}: the HTTP status the
 * server answered, whether or not the SDK accepted it.
 */
export async function sdkStatus(call) {
  let status;
  try {
    await call({ onResponse: (raw) => (status = raw.status) });
    return { status };
  } catch (error) {
    if (error && typeof error.statusCode === "number") return { status: error.statusCode, error };
    if (status !== undefined) return { status, error };
    throw error;
  }
}
