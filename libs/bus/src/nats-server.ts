/**
 * Running a nats-server child process with JetStream: used by `sluice run`
 * (the embedded server of a one-machine install) and by the test harness.
 * It writes a config file, lets the server pick random ports when asked
 * (`port: -1`) and reads them back from the ports file the server writes
 * (`ports_file_dir`, nats-server_<pid>.ports), then waits until JetStream
 * answers an account-info request, so callers get a server that takes
 * publishes.
 *
 * Durability: `sync_interval: always` (fsync every JetStream write) is asked
 * for by default, but nats-server 2.9 does not know the setting and refuses
 * the whole config. Support is detected by validating the config with
 * `nats-server -t`; when unsupported the setting is dropped and
 * `syncAlways: false` is returned so the caller can log the risk (see
 * docs/decisions/0001-jetstream-durability.md).
 *
 * Safety of the embedded server (docs/decisions/0007):
 * - With `ownProcessGroup` it runs in its own process group (`detached`), so a terminal's Ctrl-C,
 *   which signals the whole foreground group, reaches only Sluice; Sluice
 *   finishes its in-flight work and then stops the server itself.
 * - With `auth.token`, clients must present that token (the config file that
 *   holds it is written mode 0600); Sluice generates one per data dir.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { stopStaleNatsServer } from './stale-nats-server.ts';

const PID_FILE = 'nats-server.pid';

export interface NatsServerOptions {
  /** Path or name of the binary (default "nats-server" on PATH). */
  binary?: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Client port; 0 or -1 (default) picks a free one. */
  port?: number;
  /** JetStream store directory (created if missing); the config and ports file go beside it. */
  storeDir: string;
  /** fsync every JetStream write where the server supports it (default true). */
  syncAlways?: boolean;
  /** JetStream max_file_store in bytes (the store budget, store-budget.ts); unset: the server's default. */
  maxFileStoreBytes?: number;
  /** Join a cluster: its name, our route port (0/-1 random) and the routes to the other nodes. */
  cluster?: { name: string; port: number; routes: string[] };
  /** Unique server name (required for JetStream in a cluster). */
  serverName?: string;
  /** Write the server log here instead of keeping it in memory for error messages. */
  logFile?: string;
  /** Wait until JetStream answers (default true; a cluster node can only answer once a quorum runs). */
  waitForJetStream?: boolean;
  /** Give up starting after this long (default 20 s). */
  startTimeoutMs?: number;
  /** Called with the pid of a leftover server of this data dir that was stopped first. */
  onStaleServer?: (pid: number) => void;
  /** Require this token from every client (default: no authentication). */
  auth?: { token: string };
  /**
   * Run the server in a process group of its own (default false), out of reach of a terminal's
   * Ctrl-C: `sluice run` stops it itself, after its services finished. Test servers stay in the
   * runner's group, so that interrupting a test run also ends them.
   */
  ownProcessGroup?: boolean;
}

export interface NatsServerHandle {
  /** nats://host:port for clients. */
  url: string;
  clientPort: number;
  clusterPort?: number;
  pid: number;
  /** Whether `sync_interval: always` is in effect. */
  syncAlways: boolean;
  /** Path of the config file written for the server. */
  configFile: string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM, wait for exit, SIGKILL after `deadlineMs` (default 10 s). */
  stop(deadlineMs?: number): Promise<void>;
  /** SIGKILL (a crash), resolves when the process is gone. */
  kill(): Promise<void>;
}

const syncSupport = new Map<string, Promise<boolean>>();
const LOG_TAIL_LINES = 40;

export class NatsServerStartError extends Error {
  override name = 'NatsServerStartError';
}

/** Render the server config (nats-server's config syntax accepts JSON values). */
export function renderNatsConfig(o: {
  host: string;
  port: number;
  storeDir: string;
  portsDir: string;
  syncAlways: boolean;
  serverName?: string;
  cluster?: { name: string; port: number; routes: string[] };
  logFile?: string;
  maxFileStoreBytes?: number;
  token?: string;
}): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    '# Written by Sluice; regenerated at every start.',
    ...(o.serverName ? [`server_name: ${q(o.serverName)}`] : []),
    `host: ${q(o.host)}`,
    `port: ${o.port}`,
    `ports_file_dir: ${q(o.portsDir)}`,
    `pid_file: ${q(join(o.portsDir, PID_FILE))}`,
    ...(o.logFile ? [`log_file: ${q(o.logFile)}`] : []),
    ...(o.token ? [`authorization { token: ${q(o.token)} }`] : []),
    'jetstream {',
    `  store_dir: ${q(o.storeDir)}`,
    ...(o.syncAlways ? ['  sync_interval: always'] : []),
    ...(o.maxFileStoreBytes ? [`  max_file_store: ${Math.floor(o.maxFileStoreBytes)}`] : []),
    '}',
  ];
  if (o.cluster) {
    lines.push(
      'cluster {',
      `  name: ${q(o.cluster.name)}`,
      `  host: ${q(o.host)}`,
      `  port: ${o.cluster.port}`,
      `  routes: [${o.cluster.routes.map(q).join(', ')}]`,
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

function run(binary: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((res) => {
    execFile(binary, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      res({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** Whether this binary accepts `sync_interval: always` (2.10+), by validating a config with it. */
export function supportsSyncAlways(binary: string, configFile: string): Promise<boolean> {
  let known = syncSupport.get(binary);
  if (!known) {
    known = run(binary, ['-t', '-c', configFile]).then(({ code, output }) => {
      if (code === 0) return true;
      if (/sync_interval/.test(output)) return false;
      throw new NatsServerStartError(`nats-server rejects its configuration: ${output.trim()}`);
    });
    syncSupport.set(binary, known);
    known.catch(() => syncSupport.delete(binary));
  }
  return known;
}

function randomize(port: number | undefined): number {
  return port === undefined || port === 0 || port === -1 ? -1 : port;
}

export async function spawnNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const binary = opts.binary ?? 'nats-server';
  const host = opts.host ?? '127.0.0.1';
  const storeDir = resolve(opts.storeDir);
  const portsDir = join(storeDir, 'run');
  const configFile = join(storeDir, 'nats-server.conf');
  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  await mkdir(portsDir, { recursive: true });

  const base = {
    host,
    port: randomize(opts.port),
    storeDir,
    portsDir,
    serverName: opts.serverName,
    logFile: opts.logFile,
    maxFileStoreBytes: opts.maxFileStoreBytes,
    cluster: opts.cluster ? { ...opts.cluster, port: randomize(opts.cluster.port) } : undefined,
    token: opts.auth?.token,
  };
  // The config may hold the client token: readable by this user only.
  const writeConfig = async (text: string) => {
    await writeFile(configFile, text, { mode: 0o600 });
    await chmod(configFile, 0o600);
  };
  const stale = await stopStaleNatsServer(join(portsDir, PID_FILE), configFile);
  if (stale !== undefined) opts.onStaleServer?.(stale);
  let syncAlways = opts.syncAlways ?? true;
  await writeConfig(renderNatsConfig({ ...base, syncAlways }));
  if (syncAlways && !(await supportsSyncAlways(binary, configFile))) {
    syncAlways = false;
    await writeConfig(renderNatsConfig({ ...base, syncAlways }));
  }

  // detached: a process group of its own, out of reach of the terminal's Ctrl-C (see header).
  const child = spawn(binary, ['-c', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.ownProcessGroup ?? false,
  });
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (tail.length > LOG_TAIL_LINES) tail.splice(0, tail.length - LOG_TAIL_LINES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((res) => {
    child.once('exit', (code, signal) => res(code ?? (signal ? null : 0)));
    child.once('error', (err) => {
      tail.push(`spawn failed: ${err.message}`);
      res(null);
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
    process.removeListener('exit', killOnExit);
  });
  // If this process dies without stopping the server, do not leave it behind.
  const killOnExit = () => child.kill('SIGTERM');
  process.on('exit', killOnExit);

  const fail = async (why: string): Promise<never> => {
    if (!gone) child.kill('SIGKILL');
    await exited;
    const inUse = tail.find((l) => /address already in use/i.test(l));
    if (inUse) {
      // "[FTL] Error listening on port: 127.0.0.1:4222, \"listen tcp ...: bind: address already in use\""
      const where = /listening on port: ([^,\s]+)/.exec(inUse)?.[1] ?? `${host}:${base.port}`;
      throw new NatsServerStartError(
        `nats-server cannot listen on ${where}: address already in use (another program has the port)`,
      );
    }
    const said = opts.logFile ? `see ${opts.logFile}` : `nats-server said:\n  ${tail.join('\n  ')}`;
    throw new NatsServerStartError(`${why}; ${said}`);
  };

  if (child.pid === undefined) return fail(`cannot run ${binary}`);
  const pid = child.pid;
  const ports = await readPorts(portsDir, pid, deadline, () => gone).catch((err: Error) => fail(err.message));
  const clientUrl = ports.nats?.[0];
  if (!clientUrl) return fail('nats-server reported no client port');
  const clientPort = Number(new URL(clientUrl).port);
  const clusterPort = ports.cluster?.[0] ? Number(new URL(ports.cluster[0]).port) : undefined;
  const url = `nats://${host}:${clientPort}`;

  if (opts.waitForJetStream !== false) {
    await waitForJetStream(url, deadline - Date.now(), () => gone, opts.auth?.token).catch((err: Error) =>
      fail(err.message),
    );
  }

  const handle: NatsServerHandle = {
    url,
    clientPort,
    clusterPort,
    pid,
    syncAlways,
    configFile,
    exited,
    async stop(deadlineMs = 10_000) {
      if (gone) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (!gone) child.kill('SIGKILL');
      await exited;
    },
  };
  return handle;
}

interface PortsFile {
  nats?: string[];
  cluster?: string[];
  monitoring?: string[];
}

async function readPorts(
  dir: string,
  pid: number,
  deadline: number,
  exited: () => boolean,
): Promise<PortsFile> {
  const suffix = `_${pid}.ports`;
  while (Date.now() < deadline) {
    if (exited()) throw new Error('nats-server exited during start-up');
    const name = (await readdir(dir)).find((f) => f.endsWith(suffix));
    if (name) {
      try {
        return JSON.parse(await readFile(join(dir, name), 'utf8')) as PortsFile;
      } catch {
        // written but not complete yet: read again
      }
    }
    await sleep(20);
  }
  throw new Error(`nats-server wrote no ports file (${basename(dir)}/*${suffix}) in time`);
}

/** Poll until JetStream answers an account-info request on `url`. */
export async function waitForJetStream(
  url: string,
  timeoutMs: number,
  exited: () => boolean = () => false,
  token?: string,
) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (exited()) throw new Error('nats-server exited during start-up');
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1000, token });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 1000 });
        await jsm.getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`JetStream on ${url} not ready in time (${last})`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
