/**
 * A real DNSSEC setup on loopback for DANE and MTA-STS tests: Knot DNS
 * (knotd) serves the test zones and signs them itself (dnssec-signing: on,
 * fresh keys per run), and Unbound validates them as the recursive resolver
 * the egress trusts (egress.dnsResolver), with the zones' DS records from
 * keymgr as its trust anchors. The AD bit the egress reads is therefore
 * Unbound's verdict on real signatures, not a flag we set ourselves.
 *
 * Zone kinds:
 *   - 'signed': signed, anchored: answers validate (AD set);
 *   - 'bogus': signed, but Unbound is given a wrong DS for it, so every
 *     answer fails validation: Unbound answers SERVFAIL (RFC 4035 §5.5);
 *   - 'unsigned': not signed, no anchor: answers are insecure (no AD).
 * Unbound has no root trust anchor here, so only the listed zones exist.
 *
 * Needs the Debian packages knot and unbound (scripts/setup.sh).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureDns } from '@sluice/dns';
import { freePort } from './ports.ts';
import { waitUntil } from './wait-until.ts';

export interface TestZone {
  /** e.g. "dane.test" */
  name: string;
  kind: 'signed' | 'bogus' | 'unsigned';
  /** Zone-file lines relative to the origin, e.g. "mx A 127.0.0.1" or "@ MX 10 mx". */
  records: string[];
}

export interface DnssecResolver {
  /** "127.0.0.1:port" of the validating resolver (egress.dnsResolver). */
  address: string;
  stop(): Promise<void>;
}

export const KNOTD_BIN = '/usr/sbin/knotd';
export const KEYMGR_BIN = '/usr/sbin/keymgr';
export const UNBOUND_BIN = '/usr/sbin/unbound';

function daemon(
  bin: string,
  args: string[],
): { child: ChildProcess; stderr: () => string; exited: () => boolean } {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited = false;
  child.stderr?.on('data', (d) => {
    stderr += d.toString();
  });
  child.on('exit', () => {
    exited = true;
  });
  return { child, stderr: () => stderr, exited: () => exited };
}

async function stopChild(child: ChildProcess, exited: () => boolean): Promise<void> {
  if (exited()) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await gone;
}

export async function startDnssecResolver(zones: TestZone[]): Promise<DnssecResolver> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-dnssec-'));
  const knotPort = await freePort();
  const unboundPort = await freePort();
  for (const z of zones) {
    writeFileSync(
      join(dir, `${z.name}.zone`),
      [
        `$ORIGIN ${z.name}.`,
        '$TTL 60',
        `@ SOA ns.${z.name}. hostmaster.${z.name}. 1 60 60 3600 5`,
        `@ NS ns.${z.name}.`,
        `ns.${z.name}. A 127.0.0.1`,
        ...z.records,
        '',
      ].join('\n'),
    );
  }
  const knotConf = join(dir, 'knot.conf');
  writeFileSync(
    knotConf,
    [
      'server:',
      `    listen: 127.0.0.1@${knotPort}`,
      `    rundir: ${dir}`,
      'database:',
      `    storage: ${dir}`,
      'log:',
      '  - target: stderr',
      '    any: warning',
      'template:',
      '  - id: default',
      `    storage: ${dir}`,
      'zone:',
      ...zones.flatMap((z) => [
        `  - domain: ${z.name}`,
        `    file: ${z.name}.zone`,
        `    dnssec-signing: ${z.kind === 'unsigned' ? 'off' : 'on'}`,
      ]),
      '',
    ].join('\n'),
  );
  const knot = daemon(KNOTD_BIN, ['-c', knotConf]);
  const direct = createSecureDns({ resolver: `127.0.0.1:${knotPort}`, timeoutMs: 1000 });
  // Knot signs on load: wait until every zone answers (its SOA) directly.
  await waitUntil(
    () => `knotd to serve the test zones on ${knotPort} (stderr: ${knot.stderr()})`,
    async () => {
      if (knot.exited()) throw new Error(`knotd exited: ${knot.stderr()}`);
      const answers = await Promise.all(zones.map((z) => direct.txt(`ns.${z.name}`)));
      return answers.every((a) => a.rcode === 'noerror');
    },
  );
  const anchors: string[] = [];
  for (const z of zones.filter((x) => x.kind !== 'unsigned')) {
    let ds = execFileSync(KEYMGR_BIN, ['-c', knotConf, z.name, 'ds'], { encoding: 'utf8' })
      .split('\n')
      .find((l) => / DS \d+ \d+ 2 /.test(l));
    if (!ds) throw new Error(`keymgr gave no SHA-256 DS for ${z.name}`);
    // A wrong digest: the zone's real signatures cannot validate against it (bogus).
    if (z.kind === 'bogus') ds = ds.replace(/[0-9a-f]{64}$/, '00'.repeat(32));
    anchors.push(`  trust-anchor: "${ds.trim()}"`);
  }
  const unboundConf = join(dir, 'unbound.conf');
  writeFileSync(
    unboundConf,
    [
      'server:',
      '  interface: 127.0.0.1',
      `  port: ${unboundPort}`,
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${join(dir, 'unbound.pid')}"`,
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 0',
      '  do-not-query-localhost: no',
      '  val-permissive-mode: no',
      '  module-config: "validator iterator"',
      '  access-control: 127.0.0.0/8 allow',
      '  num-threads: 1',
      '  qname-minimisation: no',
      '  local-zone: "test." nodefault',
      ...anchors,
      ...zones.flatMap((z) => ['stub-zone:', `  name: "${z.name}"`, `  stub-addr: 127.0.0.1@${knotPort}`]),
      '',
    ].join('\n'),
  );
  const unbound = daemon(UNBOUND_BIN, ['-d', '-c', unboundConf]);
  const address = `127.0.0.1:${unboundPort}`;
  const validating = createSecureDns({ resolver: address, timeoutMs: 1000 });
  await waitUntil(
    () => `unbound to answer on ${unboundPort} (stderr: ${unbound.stderr()})`,
    async () => {
      if (unbound.exited()) throw new Error(`unbound exited: ${unbound.stderr()}`);
      const a = await validating.txt(`ns.${zones[0]!.name}`);
      return a.rcode !== 'timeout' && a.rcode !== 'error';
    },
  );
  return {
    address,
    async stop() {
      await stopChild(unbound.child, unbound.exited);
      await stopChild(knot.child, knot.exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
