/**
 * Small helpers shared by the end-to-end tests: where the ingress listens,
 * the queue id in a 250 reply, and a log sink that keeps test output quiet.
 */
import { Writable } from 'node:stream';
import type { Runtime } from '@sluice/runtime';

export { type SluiceProcess, sluiceBin, startSluiceProcess } from '@sluice/test-harness';

export function devNull(): NodeJS.WritableStream {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

export function ingressPort(rt: Runtime): number {
  const info = rt.service('ingress')?.info?.() as { ports?: number[] } | undefined;
  const port = info?.ports?.[0];
  if (!port) throw new Error(`ingress did not report a port: ${JSON.stringify(info)}`);
  return port;
}

/** "250 2.0.0 Ok: queued as 01J..." -> the queue id. */
export function queueIdFromReply(reply: string): string {
  const m = /queued as ([0-9A-Z]{10,40})/.exec(reply);
  if (!m) throw new Error(`no queue id in reply: ${reply}`);
  return m[1]!;
}
