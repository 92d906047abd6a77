/**
 * Waiting for a condition in tests and benchmarks. Tests wait for events (a
 * sink's arrival, a process exit, a span); where no event exists — a metric,
 * a stream's state, a log line, another process's output — they poll with a
 * deadline, and this is the one place that does it: the probe runs at once,
 * then every `intervalMs` until it yields a value or the deadline passes. A
 * probe that throws counts as "not yet"; its last error is named in the
 * timeout, so a wait that never succeeds says why.
 */

export interface WaitUntilOptions {
  /** How long to keep probing (default 15 s). */
  timeoutMs?: number;
  /** Pause between probes (default 25 ms). */
  intervalMs?: number;
}

/** A probe's answer: a value when the condition holds; `undefined`, `null` or `false` while it does not. */
export type Probed<T> = T | undefined | null | false;

/**
 * Resolve with the first probe value that is not `undefined`, `null` or `false`
 * (so 0 and '' count as values); reject with `timed out after Nms waiting for <what>`.
 * `what` may be a function, called only at the timeout, to describe the last state seen.
 */
export async function waitUntil<T>(
  what: string | (() => string),
  probe: () => Probed<T> | Promise<Probed<T>>,
  opts: WaitUntilOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const described = typeof what === 'function' ? what() : what;
      const cause =
        lastError === undefined
          ? ''
          : `; the last probe threw: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${described}${cause}`, {
        cause: lastError,
      });
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
}
