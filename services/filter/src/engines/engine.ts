/**
 * The interface every optional content engine (rspamd, clamd) implements,
 * and the one place that applies an engine's timeout and failure mode:
 *
 * - an engine that answers gives rule hits and maybe a virus name;
 * - an engine that fails or is slower than its timeout (or the request's
 *   deadline) is handled by its `onFailure`: "tempfail" answers 451 so the
 *   client retries, "skip" accepts without it and tags ENGINE_SKIPPED;
 * - a virus found is always a reject (never a silent accept).
 *
 * Nothing here throws: an engine failure is data.
 */
import type { Envelope, RuleHit } from '@sluice/proto';
import type { MessageContent } from '../message-content.ts';

export interface EngineScan {
  hits: RuleHit[];
  /** Name of a virus found (clamd). */
  virus?: string;
}

export interface ScanEngine {
  readonly name: string;
  /** Scan the whole message (content.open()); reject on any failure. `signal` aborts at the timeout. */
  scan(content: MessageContent, env: Envelope, signal: AbortSignal): Promise<EngineScan>;
}

export type EngineFailureMode = 'tempfail' | 'skip';

export interface ConfiguredEngine {
  engine: ScanEngine;
  timeoutMs: number;
  onFailure: EngineFailureMode;
}

export type EngineOutcome =
  | ({ kind: 'scanned'; engine: string } & EngineScan)
  | { kind: 'failed'; engine: string; mode: EngineFailureMode; error: string };

export class EngineTimeoutError extends Error {
  override name = 'EngineTimeoutError';
}

/** Run one engine bounded by min(its timeout, the time left before `deadline`). */
export async function runEngine(
  c: ConfiguredEngine,
  content: MessageContent,
  env: Envelope,
  deadline: number,
): Promise<EngineOutcome> {
  const budget = Math.max(1, Math.min(c.timeoutMs, deadline - Date.now()));
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new EngineTimeoutError(`${c.engine.name}: no answer within ${budget} ms`);
      ac.abort(err);
      reject(err);
    }, budget);
  });
  try {
    const r = await Promise.race([c.engine.scan(content, env, ac.signal), timeout]);
    return { kind: 'scanned', engine: c.engine.name, ...r };
  } catch (err) {
    return {
      kind: 'failed',
      engine: c.engine.name,
      mode: c.onFailure,
      error: (err as Error).message ?? String(err),
    };
  } finally {
    clearTimeout(timer);
  }
}
