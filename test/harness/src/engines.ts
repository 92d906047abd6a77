/**
 * Real content engines for the filter's tests, from Debian's packages
 * (scripts/setup.sh test: rspamd, clamav-daemon), each started by the test
 * on a free loopback port with its own temp dir and config — never the
 * system services or their sockets.
 *
 * - clamd: a database directory holding only the EICAR test signature (an
 *   .ndb we write: the official databases cannot be downloaded here), TCP on
 *   127.0.0.1.
 * - rspamd: the packaged configuration with LOCAL_CONFDIR pointing at our
 *   temp dir, whose local.d binds the normal worker to a free port, turns
 *   off the proxy and fuzzy workers, and points DNS at a given server (the
 *   harness' loopback DNS), so no lookup leaves the machine.
 *
 * `available()` says whether the binary is installed, so a test can skip
 * with the reason instead of failing on a machine without them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { waitUntil } from './wait-until.ts';

export const CLAMD_BIN = '/usr/sbin/clamd';
export const RSPAMD_BIN = '/usr/bin/rspamd';

/** The EICAR test string (eicar.org), built in two halves so this file is not itself "infected". */
export const EICAR = `X5O!P%@AP[4\\PZX54(P^)7CC)7}$${'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'}`;

export interface EngineProcess {
  host: string;
  port: number;
  dir: string;
  /** Whatever the process wrote to stdout/stderr (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

function spawnLogged(bin: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => out };
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  await rm(dir, { recursive: true, force: true });
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function clamdAvailable(): boolean {
  return existsSync(CLAMD_BIN);
}

export function rspamdAvailable(): boolean {
  return existsSync(RSPAMD_BIN);
}

/** clamd with only the EICAR signature, on a free port; resolves once it accepts connections. */
export async function startClamd(): Promise<EngineProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-clamd-'));
  const db = join(dir, 'db');
  await mkdir(db);
  // ndb: Name:TargetType:Offset:HexSignature (ClamAV signature format; * = anywhere).
  await writeFile(join(db, 'eicar.ndb'), `Eicar-Test-Signature:0:*:${Buffer.from(EICAR).toString('hex')}\n`);
  const port = await freePort();
  const conf = join(dir, 'clamd.conf');
  await writeFile(
    conf,
    [
      'Foreground yes',
      `DatabaseDirectory ${db}`,
      'TCPAddr 127.0.0.1',
      `TCPSocket ${port}`,
      `PidFile ${join(dir, 'clamd.pid')}`,
      `TemporaryDirectory ${dir}`,
      'LogFile /dev/null',
      '',
    ].join('\n'),
  );
  const { child, output } = spawnLogged(CLAMD_BIN, ['-c', conf]);
  try {
    await waitUntil(
      'clamd accepting connections',
      async () => {
        if (child.exitCode !== null) throw new Error(`clamd exited with ${child.exitCode}`);
        return tcpOpen('127.0.0.1', port);
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
  } catch (err) {
    await stopChild(child, dir);
    throw new Error(`clamd did not start: ${(err as Error).message}\n${output()}`);
  }
  return { host: '127.0.0.1', port, dir, output, stop: () => stopChild(child, dir) };
}

/** rspamd's normal worker on a free port, DNS pointed at `dnsServer` ("ip:port"). */
export async function startRspamd(opts: { dnsServer: string }): Promise<EngineProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-rspamd-'));
  for (const d of ['local.d', 'db', 'run', 'log']) await mkdir(join(dir, d));
  const port = await freePort();
  const controller = await freePort();
  const local = (f: string, text: string) => writeFile(join(dir, 'local.d', f), text);
  await local('worker-normal.inc', `bind_socket = "127.0.0.1:${port}";\ncount = 1;\n`);
  await local('worker-controller.inc', `bind_socket = "127.0.0.1:${controller}";\ncount = 1;\n`);
  await local('worker-proxy.inc', 'enabled = false;\n');
  await local('worker-fuzzy.inc', 'enabled = false;\n');
  await local(
    'options.inc',
    `dns { nameserver = ["${opts.dnsServer}"]; timeout = 0.5s; retransmits = 1; }\n`,
  );
  await local(
    'logging.inc',
    `type = "file";\nfilename = "${join(dir, 'log', 'rspamd.log')}";\nlevel = "warning";\n`,
  );
  const { child, output } = spawnLogged(RSPAMD_BIN, [
    '-f',
    '-i',
    '-u',
    'root',
    '-g',
    'root',
    '-c',
    '/etc/rspamd/rspamd.conf',
    `--var=LOCAL_CONFDIR=${dir}`,
    `--var=DBDIR=${join(dir, 'db')}`,
    `--var=RUNDIR=${join(dir, 'run')}`,
    `--var=LOGDIR=${join(dir, 'log')}`,
  ]);
  try {
    // The worker answers /ping once the configuration is loaded.
    await waitUntil(
      'rspamd answering /ping',
      async () => {
        if (child.exitCode !== null) throw new Error(`rspamd exited with ${child.exitCode}`);
        const res = await fetch(`http://127.0.0.1:${port}/ping`).catch(() => null);
        return res?.ok === true;
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    );
  } catch (err) {
    await stopChild(child, dir);
    throw new Error(`rspamd did not start: ${(err as Error).message}\n${output()}`);
  }
  return { host: '127.0.0.1', port, dir, output, stop: () => stopChild(child, dir) };
}
