/**
 * A throwaway Debian Postfix instance: its own config_directory (main.cf,
 * master.cf, maps) with the queue and data directories below it, started with
 * `postfix -c DIR start`, nothing chrooted, smtpd on 127.0.0.1 only, its log
 * in DIR/maillog (postlogd). Used by tests (Postfix as the sending MTA that
 * relays into our MX) and by the comparison benchmark (Postfix as the MX
 * beside Sluice), which give it the rest of their main.cf.
 *
 * Postfix starts as root (its master drops to mail_owner), so callers check
 * `postfixUsable()` first. stop() stops the instance, kills what is left of
 * its process group (the master is a session leader) and removes the
 * directory.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { waitUntil } from './wait-until.ts';

export const POSTFIX_BIN = '/usr/sbin/postfix';

/** Postfix is installed and we may start it (root). */
export function postfixUsable(): boolean {
  return existsSync(POSTFIX_BIN) && userInfo().uid === 0;
}

/** master.cf: the stock services, none chrooted, smtpd on `smtpdListen` (e.g. 127.0.0.1:2525). */
export function postfixMasterCf(smtpdListen: string): string {
  const services: Array<[string, string, string, string, string, string, string]> = [
    [smtpdListen, 'inet', 'n', '-', 'n', '-', '-'],
    ['pickup', 'unix', 'n', '-', 'n', '60', '1'],
    ['cleanup', 'unix', 'n', '-', 'n', '-', '0'],
    ['qmgr', 'unix', 'n', '-', 'n', '300', '1'],
    ['tlsmgr', 'unix', '-', '-', 'n', '1000?', '1'],
    ['rewrite', 'unix', '-', '-', 'n', '-', '-'],
    ['bounce', 'unix', '-', '-', 'n', '-', '0'],
    ['defer', 'unix', '-', '-', 'n', '-', '0'],
    ['trace', 'unix', '-', '-', 'n', '-', '0'],
    ['verify', 'unix', '-', '-', 'n', '-', '1'],
    ['flush', 'unix', 'n', '-', 'n', '1000?', '0'],
    ['proxymap', 'unix', '-', '-', 'n', '-', '-'],
    ['proxywrite', 'unix', '-', '-', 'n', '-', '1'],
    ['smtp', 'unix', '-', '-', 'n', '-', '-'],
    ['relay', 'unix', '-', '-', 'n', '-', '-'],
    ['showq', 'unix', 'n', '-', 'n', '-', '-'],
    ['error', 'unix', '-', '-', 'n', '-', '-'],
    ['retry', 'unix', '-', '-', 'n', '-', '-'],
    ['discard', 'unix', '-', '-', 'n', '-', '-'],
    ['anvil', 'unix', '-', '-', 'n', '-', '1'],
    ['scache', 'unix', '-', '-', 'n', '-', '1'],
    ['postlog', 'unix-dgram', 'n', '-', 'n', '-', '1'],
  ];
  const command: Record<string, string> = {
    rewrite: 'trivial-rewrite',
    defer: 'bounce',
    trace: 'bounce',
    proxywrite: 'proxymap',
    relay: 'smtp',
    retry: 'error',
    postlog: 'postlogd',
  };
  const rows = services.map(([name, ...cols]) => {
    const cmd = name.includes(':') ? 'smtpd' : (command[name] ?? name);
    return [name.padEnd(18), ...cols.map((c) => c.padEnd(6)), cmd].join(' ');
  });
  return `# service type private unpriv chroot wakeup maxproc command\n${rows.join('\n')}\n`;
}

/** The main.cf lines every throwaway instance has: its directories, owner, loopback only, its own log file. */
export function postfixBaseMainCf(dir: string): string[] {
  return [
    'compatibility_level = 3.6',
    `queue_directory = ${dir}/queue`,
    `data_directory = ${dir}/data`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'biff = no',
    'append_dot_mydomain = no',
    'readme_directory = no',
    'alias_maps =',
    'alias_database =',
    `maillog_file = ${dir}/maillog`,
    `maillog_file_prefixes = ${dir}`,
  ];
}

export interface PostfixInstance {
  dir: string;
  /** smtpd's port on 127.0.0.1. */
  smtpPort: number;
  /** The master's pid (the root of the instance's processes). */
  masterPid(): number | undefined;
  /** DIR/maillog as written so far. */
  maillog(): string;
  /** Queue ids still in the queue (`postqueue -j`). */
  queued(): string[];
  stop(): Promise<void>;
}

/** Something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function idOf(flag: '-u' | '-g', name: string): number {
  return Number(execFileSync('id', [flag, name]).toString().trim());
}

/**
 * Start an instance: `mainCf(dir)` gives the lines after postfixBaseMainCf's, `files` more
 * files (maps) in DIR. DIR is `dir` when given (made by the caller, e.g. with keys of daemons
 * beside Postfix), else a new directory in the OS temp dir; stop() removes it either way.
 */
export async function startPostfixInstance(opts: {
  mainCf: (dir: string) => string[];
  files?: Record<string, string>;
  dir?: string;
  smtpPort?: number;
}): Promise<PostfixInstance> {
  if (!postfixUsable()) throw new Error(`a Postfix instance needs ${POSTFIX_BIN} and root`);
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'postfix-'));
  chmodSync(dir, 0o755); // postfix's own user reads the maps below it
  const smtpPort = opts.smtpPort ?? (await freePort());
  writeFileSync(join(dir, 'main.cf'), `${[...postfixBaseMainCf(dir), ...opts.mainCf(dir)].join('\n')}\n`);
  writeFileSync(join(dir, 'master.cf'), postfixMasterCf(`127.0.0.1:${smtpPort}`));
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), text);
  mkdirSync(join(dir, 'queue')); // postfix start creates its subdirectories
  mkdirSync(join(dir, 'data'));
  chownSync(join(dir, 'data'), idOf('-u', 'postfix'), idOf('-g', 'postfix'));

  const masterPid = () => {
    const file = join(dir, 'queue', 'pid', 'master.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    return pid > 0 ? pid : undefined;
  };
  const kill = () => {
    const master = masterPid();
    try {
      execFileSync(POSTFIX_BIN, ['-c', dir, 'stop'], { stdio: 'ignore' });
    } catch {}
    if (master) {
      try {
        process.kill(-master, 'SIGKILL'); // the master's process group: it and its children
      } catch {}
    }
  };
  try {
    execFileSync(POSTFIX_BIN, ['-c', dir, 'start'], { stdio: 'pipe' });
    await waitUntil('postfix smtpd listening', () => portOpen(smtpPort), { timeoutMs: 20_000 });
  } catch (err) {
    kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    smtpPort,
    masterPid,
    maillog: () => (existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : ''),
    queued: () =>
      execFileSync('postqueue', ['-c', dir, '-j'])
        .toString()
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => (JSON.parse(l) as { queue_id: string }).queue_id),
    async stop() {
      kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PostfixRelayOptions {
  /** Where everything goes: [127.0.0.1]:relayPort (the MX under test). */
  relayPort: number;
  /** smtp_tls_security_level towards it: encrypt (STARTTLS required), may, or none. */
  tls: 'encrypt' | 'may' | 'none';
  /** myhostname, the EHLO name it gives (default relay.sender.test). */
  hostname?: string;
}

/**
 * main.cf of Postfix as the sending MTA: accepts from loopback only
 * (mynetworks), delivers nothing itself, relays everything to the relayhost,
 * retries after 1 s (so a test does not wait out the default 300 s backoff),
 * and logs the TLS of its SMTP client (smtp_tls_loglevel 1).
 */
export function postfixRelayMainCf(o: PostfixRelayOptions): string[] {
  const hostname = o.hostname ?? 'relay.sender.test';
  return [
    `myhostname = ${hostname}`,
    `mydomain = ${hostname.split('.').slice(1).join('.')}`,
    'myorigin = $mydomain',
    'mydestination =',
    'local_transport = error:no local delivery',
    'mynetworks = 127.0.0.0/8',
    'relay_domains =',
    'smtpd_relay_restrictions = permit_mynetworks, reject',
    `relayhost = [127.0.0.1]:${o.relayPort}`,
    `smtp_tls_security_level = ${o.tls}`,
    'smtp_tls_loglevel = 1',
    'smtpd_tls_security_level = none',
    'queue_run_delay = 1s',
    'minimal_backoff_time = 1s',
    'maximal_backoff_time = 2s',
  ];
}

/** A Postfix instance that relays everything it is given to the MX on `relayPort`. */
export function startPostfixRelay(o: PostfixRelayOptions): Promise<PostfixInstance> {
  return startPostfixInstance({ mainCf: () => postfixRelayMainCf(o) });
}
