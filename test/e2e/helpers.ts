/**
 * Small helpers shared by the end-to-end tests: where the ingress listens,
 * the queue id in a 250 reply, and a log sink that keeps test output quiet.
 */
import { Writable } from 'node:stream';
import type { Runtime } from '@sluice/runtime';

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

/** A `sluice run` child process, as an operator starts it. */
export interface SluiceProcess {
  child: import('node:child_process').ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

const root = new URL('../..', import.meta.url).pathname;
export const sluiceBin = `${root}cli/bin/sluice.js`;

/** Start `sluice run ARGS` and resolve once it logs "sluice is running". */
export async function startSluiceProcess(args: string[], timeoutMs = 30_000): Promise<SluiceProcess> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [sluiceBin, 'run', ...args], { cwd: root });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sluice run did not start:\n${out}\n${err}`)), timeoutMs);
    const check = () => {
      if (out.includes('sluice is running')) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`sluice run exited ${code}:\n${out}\n${err}`));
    });
  }).catch((e: unknown) => {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw e;
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}
