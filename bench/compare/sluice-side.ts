/**
 * The Sluice side of the comparison: `sluice run` (all services in one
 * process, log level info) with its embedded nats-server child (JetStream
 * file store on disk, syncAlways as configured by default), configured as
 * the same forwarding MX as the Postfix instance: in.test is our domain,
 * user@in.test -> user-1@out.test and Nuser@in.test -> user-N@out.test as
 * routing.forwards, unknown recipients refused at RCPT, and out.test sent to
 * the sink by a static transport (no MX lookup, as on the Postfix side).
 *
 * The before-queue filter still checks SPF, DKIM and DMARC of each message:
 * it asks the benchmark's loopback DNS server (sender.test has an SPF
 * record), which Postfix, with no such checks configured, does not.
 *
 * The signing variants (SluiceSigning) add SRS (srs.secrets, the SRS domain
 * srs.in.test) and DKIM keys of in.test: RSA-2048 alone (as OpenDKIM signs)
 * or RSA-2048 + Ed25519 (two signatures per message). ARC sealing is off in
 * them: Postfix + OpenDKIM does not seal, and an ARC set is two more RSA
 * signatures per forward (measured apart by bench/rewriter-signing.ts).
 *
 * `pids()` is the root of the system under test: the `sluice run` process,
 * whose tree includes the nats-server child (and, with `processes: N`, its
 * worker processes, decision 0047).
 */
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, type SluiceProcess, startSluiceProcess, waitUntil } from '@sluice/test-harness';
import { forwards, IN_DOMAIN, OUT_DOMAIN } from './postfix-config.ts';
import { benchDataRoot } from './postfix-side.ts';
import { descendantsOf } from './proc-usage.ts';

export interface SluiceSide {
  smtpPort: number;
  pids(): number[];
  /** The nats-server child, to report its share of the CPU. */
  natsPid(): number | undefined;
  stop(): Promise<void>;
}

/** ingress.maxClients and ingress.limits.perIp / perNet. */
export interface SessionLimits {
  maxClients: number;
  perIp: number;
  perNet: number;
}

/** What a signing variant adds to the config: SRS and these DKIM keys (PEM). */
export interface SluiceSigning {
  srsSecret: string;
  keys: Array<{ selector: string; privateKey: string }>;
}

export function sluiceCompareConfig(o: {
  smtpPort: number;
  sinkPort: number;
  natsPort: number;
  dataDir: string;
  dnsServer: string;
  recipients: number;
  natsBinary?: string;
  signing?: SluiceSigning;
  /** Session limits instead of the comparison's (e.g. the MX benchmark's hundreds of sessions from one IP). */
  sessionLimits?: SessionLimits;
  /** A nats-server started apart (one process per service, sluice-services-side.ts): no embedded one. */
  remoteNats?: { url: string; token: string };
  /** `processes` of the config (worker processes of `sluice run`, decision 0047). */
  processes?: number;
}): string {
  const l = o.sessionLimits ?? { maxClients: 1000, perIp: 50, perNet: 60 };
  const fwd = forwards(o.recipients)
    .map(([from, to]) => `    ${JSON.stringify(from)}: [${JSON.stringify(to)}]`)
    .join('\n');
  // dns.timeout 5: the loopback DNS server runs in the benchmark's own Node process, and on a loaded
  // machine its answer took over 2 s once: a 451 from the filter, which ends smtp-source and the run.
  // ingress.limits.perIp: 50 is Postfix's own default (smtpd_client_connection_count_limit), so
  // both MXs allow the load generator's 20 sessions plus connections still closing.
  return `hostname: mx.${IN_DOMAIN}
domains: { primary: ${IN_DOMAIN} }
routing:
  forwards:
${fwd}
transports:
  ${OUT_DOMAIN}: { host: 127.0.0.1, port: ${o.sinkPort} }
${natsConfig(o)}
ingress: { listen: [{ host: 127.0.0.1, port: ${o.smtpPort} }], maxClients: ${l.maxClients}, limits: { perIp: ${l.perIp}, perNet: ${l.perNet} } }
dns: { servers: [${JSON.stringify(o.dnsServer)}], timeout: 5 }
log: { level: info }
${o.processes ? `processes: ${o.processes}\n` : ''}${o.signing ? signingConfig(o.signing) : ''}`;
}

function natsConfig(o: Parameters<typeof sluiceCompareConfig>[0]): string {
  if (o.remoteNats)
    return `nats: { servers: [${JSON.stringify(o.remoteNats.url)}], token: ${JSON.stringify(o.remoteNats.token)} }`;
  return `nats:
  servers: []
  embedded: { binary: ${JSON.stringify(o.natsBinary ?? '/usr/sbin/nats-server')}, host: 127.0.0.1, port: ${o.natsPort}, dataDir: ${JSON.stringify(o.dataDir)} }`;
}

function signingConfig(s: SluiceSigning): string {
  const keys = s.keys
    .map(
      (k) =>
        `    - { domain: ${IN_DOMAIN}, selector: ${k.selector}, privateKey: ${JSON.stringify(k.privateKey)} }`,
    )
    .join('\n');
  return `srs: { secrets: [${JSON.stringify(s.srsSecret)}] }
dkim:
  keys:
${keys}
arc: { enabled: false }
`;
}

export async function startSluice(opts: {
  sinkPort: number;
  dnsServer: string;
  recipients: number;
  signing?: SluiceSigning;
  sessionLimits?: SessionLimits;
  processes?: number;
}): Promise<SluiceSide> {
  const dir = mkdtempSync(join(benchDataRoot(), 'sluice-'));
  const smtpPort = await freePort();
  const configFile = join(dir, 'sluice.yaml');
  writeFileSync(
    configFile,
    sluiceCompareConfig({ ...opts, smtpPort, natsPort: await freePort(), dataDir: join(dir, 'nats') }),
  );
  let proc: SluiceProcess;
  try {
    proc = await startSluiceProcess(['--config', configFile], { timeoutMs: 60_000 });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  // processes: N — the load starts once every worker runs too (each logs "sluice is running").
  const processes = opts.processes ?? 1;
  await waitUntil(
    `${processes} sluice processes to run`,
    () => (proc.stdout().match(/sluice is running/g) ?? []).length >= processes,
    { timeoutMs: 60_000 },
  );
  // The logs are not kept in this process (a long run would pile them up); BENCH_SLUICE_LOG=DIR
  // writes each instance's log there instead, to see why a run stalls.
  proc.child.stdout!.removeAllListeners('data');
  const logDir = process.env['BENCH_SLUICE_LOG'];
  if (logDir) proc.child.stdout!.pipe(createWriteStream(join(logDir, `sluice-${smtpPort}.log`)));
  else proc.child.stdout!.resume();
  const pid = proc.child.pid!;
  return {
    smtpPort,
    pids: () => [pid],
    natsPid: () =>
      descendantsOf(pid).find((p) => {
        try {
          return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nats-server';
        } catch {
          return false;
        }
      }),
    async stop() {
      const children = descendantsOf(pid);
      proc.child.kill('SIGTERM');
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 20_000);
      await proc.exited;
      clearTimeout(timer);
      for (const child of children) {
        try {
          process.kill(child, 'SIGKILL'); // only if `sluice run` left its nats-server behind
        } catch {}
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
