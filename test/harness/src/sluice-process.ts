/**
 * `sluice run` as a child process, started the way an operator starts it
 * (cli/bin/sluice.js under this Node), ready once it logs "sluice is running".
 * Used by the end-to-end tests and the benchmark, which measures Sluice in its
 * own process, apart from the load generator and the sink.
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** A `sluice run` child process, as an operator starts it. */
export interface SluiceProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

const root = new URL('../../..', import.meta.url).pathname;
export const sluiceBin = `${root}cli/bin/sluice.js`;
/** The `sluice` command as installed (node_modules/.bin/sluice): a sh script that execs Node 24. */
export const sluiceCommand = `${root}cli/bin/sluice`;

export interface StartOptions {
  timeoutMs?: number;
  /** Options for node itself (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /**
   * A process group of its own, as a shell gives a foreground job: `process.kill(-pid, 'SIGINT')`
   * then is a terminal's Ctrl-C.
   */
  detached?: boolean;
}

/** Start `sluice run ARGS` and resolve once it logs "sluice is running". */
export function startSluiceProcess(args: string[], opts: StartOptions = {}): Promise<SluiceProcess> {
  return startNodeProcess([sluiceBin, 'run', ...args], opts);
}

/** Start `node SCRIPT ARGS` (a service's main.ts, the CLI) and resolve once it logs "sluice is running". */
export function startNodeProcess(argv: string[], opts: StartOptions = {}): Promise<SluiceProcess> {
  return startCommandProcess(process.execPath, [...(opts.nodeArgs ?? []), ...argv], opts);
}

/** Start `sluice run ARGS` through the installed command (cli/bin/sluice), as an operator does. */
export function startSluiceCommand(args: string[], opts: StartOptions = {}): Promise<SluiceProcess> {
  return startCommandProcess(sluiceCommand, ['run', ...args], opts);
}

async function startCommandProcess(
  command: string,
  argv: string[],
  opts: StartOptions,
): Promise<SluiceProcess> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const child = spawn(command, argv, { cwd: root, detached: opts.detached ?? false });
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
