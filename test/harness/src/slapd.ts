/**
 * A real OpenLDAP slapd for tests: a temp dir with a generated slapd.conf
 * (core + cosine schemas and a small userdir-ldap-like schema: the `account`
 * object class with uid, plus an auxiliary `sluiceForwarding` class carrying
 * the multi-valued emailForward attribute, and for submission the
 * mailPassword hash and mail addresses), an mdb database loaded with
 * slapadd before the start, listening on a free loopback port. The test can
 * stop it, kill it (SIGKILL), freeze it (SIGSTOP: the port still accepts,
 * nothing answers — the nastiest outage) and thaw it, restart it, and change
 * entries while it runs (ldapmodify / ldapdelete as the root DN).
 *
 * Needs the Debian packages slapd and ldap-utils (scripts/setup.sh test).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { waitUntil } from './wait-until.ts';

const run = promisify(execFile);
const SLAPD = process.env['SLAPD_BIN'] ?? '/usr/sbin/slapd';
const SLAPADD = process.env['SLAPADD_BIN'] ?? '/usr/sbin/slapadd';

export const SLAPD_SUFFIX = 'dc=sluice,dc=test';
export const SLAPD_USERS = `ou=users,${SLAPD_SUFFIX}`;
const ROOT_DN = `cn=admin,${SLAPD_SUFFIX}`;
const ROOT_PW = 'harness-secret';

/** A userdir-ldap-like schema: uid from cosine's account, emailForward ours (OIDs under a test arc). */
const SCHEMA = `
attributetype ( 1.3.6.1.4.1.99999.42.1.1 NAME 'emailForward'
  DESC 'Where mail for the account goes (one address per value)'
  EQUALITY caseExactIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( 1.3.6.1.4.1.99999.42.1.2 NAME 'mailPassword'
  DESC 'Password hash for mail submission ({SCHEME}value), separate from the login password'
  EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.99999.42.2.1 NAME 'sluiceForwarding'
  DESC 'An account that may forward mail' SUP top AUXILIARY
  MAY ( emailForward $ mailPassword $ mail ) )
`;

export interface LdapTestEntry {
  uid: string;
  /** emailForward values (none: an entry without a forward). Written base64, so CR/LF survive. */
  forwards?: string[];
  /** mailPassword values: stored password hashes ({CRYPT}$6$..., {SSHA}...). */
  mailPassword?: string[];
  /** mail values: the entry's addresses. */
  mail?: string[];
}

export interface SlapdServer {
  url: string;
  port: number;
  baseDn: string;
  rootDn: string;
  rootPassword: string;
  dir: string;
  /** Graceful stop (SIGTERM); start() brings it back with the same data. */
  stop(): Promise<void>;
  /** SIGKILL, a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: connections are accepted by the kernel, nothing answers. */
  freeze(): void;
  thaw(): void;
  start(): Promise<void>;
  /** Add entries while running. */
  add(entries: LdapTestEntry[]): Promise<void>;
  /** Delete entries by uid while running. */
  remove(uids: string[]): Promise<void>;
  /** Stop for good and remove the temp dir. */
  close(): Promise<void>;
}

function entryLdif(e: LdapTestEntry): string {
  const lines = [
    `dn:: ${Buffer.from(`uid=${e.uid},${SLAPD_USERS}`).toString('base64')}`,
    'objectClass: account',
    'objectClass: sluiceForwarding',
    `uid:: ${Buffer.from(e.uid).toString('base64')}`,
  ];
  for (const f of e.forwards ?? []) lines.push(`emailForward:: ${Buffer.from(f).toString('base64')}`);
  for (const p of e.mailPassword ?? []) lines.push(`mailPassword:: ${Buffer.from(p).toString('base64')}`);
  for (const m of e.mail ?? []) lines.push(`mail:: ${Buffer.from(m).toString('base64')}`);
  return `${lines.join('\n')}\n`;
}

function baseLdif(): string {
  return [
    `dn: ${SLAPD_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: sluice test\ndc: sluice\n`,
    `dn: ${SLAPD_USERS}\nobjectClass: organizationalUnit\nou: users\n`,
  ].join('\n');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startSlapd(entries: LdapTestEntry[]): Promise<SlapdServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-slapd-'));
  const db = join(dir, 'db');
  await mkdir(db);
  await writeFile(join(dir, 'sluice.schema'), SCHEMA);
  const conf = join(dir, 'slapd.conf');
  await writeFile(
    conf,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      `include ${join(dir, 'sluice.schema')}`,
      `pidfile ${join(dir, 'slapd.pid')}`,
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'sizelimit unlimited',
      'database mdb',
      `suffix "${SLAPD_SUFFIX}"`,
      `rootdn "${ROOT_DN}"`,
      `rootpw ${ROOT_PW}`,
      `directory ${db}`,
      'maxsize 268435456',
      'index uid eq',
      '',
    ].join('\n'),
  );
  const ldif = join(dir, 'entries.ldif');
  await writeFile(ldif, [baseLdif(), ...entries.map(entryLdif)].join('\n'));
  await run(SLAPADD, ['-q', '-f', conf, '-l', ldif]);
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    // Already running: a second slapd would fail to bind while the port still answers (the first
    // one's), and the first would then be orphaned, never stopped by close().
    if (child && child.exitCode === null && child.signalCode === null) return;
    const c = spawn(SLAPD, ['-f', conf, '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    child = c;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    await waitUntil(
      'slapd listening',
      async () => {
        if (c.exitCode !== null) throw new Error(`slapd exited (${c.exitCode}): ${stderr}`);
        return canConnect(port);
      },
      { timeoutMs: 10_000 },
    );
  };
  const signal = async (sig: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGCONT');
    child.kill(sig);
    await exited;
  };
  const ldapUtil = (bin: string, args: string[], input?: string) =>
    new Promise<void>((resolve, reject) => {
      const c = spawn(bin, ['-x', '-H', url, '-D', ROOT_DN, '-w', ROOT_PW, ...args], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let err = '';
      c.stderr.on('data', (b: Buffer) => {
        err += b.toString();
      });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} failed (${code}): ${err}`))));
      // A tool that exits before reading its input (it could not bind) closes the pipe: its exit
      // code and stderr say why, the EPIPE would only hide it.
      c.stdin.on('error', () => {});
      c.stdin.end(input ?? '');
    });

  await start();
  return {
    url,
    port,
    baseDn: SLAPD_USERS,
    rootDn: ROOT_DN,
    rootPassword: ROOT_PW,
    dir,
    start,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    add: (es) => ldapUtil('ldapadd', [], es.map(entryLdif).join('\n')),
    remove: async (uids) => {
      for (let i = 0; i < uids.length; i += 200) {
        const dns = uids.slice(i, i + 200).map((u) => `uid=${u},${SLAPD_USERS}`);
        await ldapUtil('ldapdelete', dns);
      }
    },
    close: async () => {
      await signal('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
