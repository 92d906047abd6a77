/**
 * AUTH+send sessions per second on the submission service's implicit-TLS
 * listener (465): each session is a new TLS connection, EHLO, AUTH PLAIN
 * (checked by @sluice/credentials against the KV snapshot synced from a real
 * slapd), MAIL, RCPT, DATA, QUIT, answered 250 only after the resolve
 * stream's PubAck, as in production. Real nats-server and slapd from the test
 * harness; nodemailer clients, `--concurrency` sessions at once for
 * `--seconds`. Sender rules take the own-address path (no resolver round
 * trip); rate limits are off; `--filter` adds the filter service's verdict.
 *
 *   node bench/submission.ts [--concurrency 20] [--seconds 10] [--hash SSHA|CRYPT-6|...] [--filter] [--json FILE]
 *
 * Numbers are measured by the integrator on a quiet machine.
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '@sluice/config';
import { type FixtureFormat, makeHash } from '@sluice/credentials/hash-fixtures';
import { filterService } from '@sluice/filter';
import type { RunningService } from '@sluice/runtime';
import { submissionService } from '@sluice/submission';
import { startNats, startServiceContext, startSlapd } from '@sluice/test-harness';
import { createTransport } from 'nodemailer';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    hash: { type: 'string', default: 'SSHA' },
    filter: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const concurrency = Number(values.concurrency);
const seconds = Number(values.seconds);
const PASSWORD = 'bench-password-1';
const USERS = 50;

const nats = await startNats();
const slapd = await startSlapd(
  await Promise.all(
    Array.from({ length: USERS }, async (_, i) => ({
      uid: `user${i}`,
      mailPassword: [await makeHash(values.hash as FixtureFormat, PASSWORD)],
    })),
  ),
);
const tlsDir = await mkdtemp(join(tmpdir(), 'sluice-bench-sub-'));
const config = parseConfig(
  {
    hostname: 'submit.bench.test',
    domains: { primary: 'bench.test' },
    nats: { servers: [nats.url] },
    log: { level: 'warn' },
    routing: { ldap: { urls: [slapd.url], baseDn: slapd.baseDn, filter: '(objectClass=account)' } },
    submission: {
      listen: { starttls: [], implicitTls: [{ host: '127.0.0.1', port: 0 }] },
      tls: { selfSigned: true, generatedDir: tlsDir },
      auth: { throttle: { maxFailuresPerIp: 1_000_000, maxFailuresPerUser: 1_000_000 } },
      rateLimits: { perMinute: 0, perHour: 0, perDay: 0 },
      filter: values.filter,
      maxClients: concurrency * 2,
      limits: { perIp: concurrency * 2 },
    },
  },
  'bench-submission',
);
const { ctx, close } = await startServiceContext(config, 'bench-submission');
const running: RunningService[] = [];
if (values.filter) running.push(await filterService.start(ctx));
const submission = await submissionService.start(ctx);
running.push(submission);
const port = (submission.info?.() as { ports?: { implicit?: number[] } } | undefined)?.ports?.implicit?.[0];
if (!port) throw new Error('the submission service reported no 465 port');

const message = (user: string, n: number) =>
  [
    `From: ${user}@bench.test`,
    'To: someone@remote.example',
    `Subject: bench ${n}`,
    `Message-ID: <bench-${user}-${n}@bench.test>`,
    '',
    'A short message of the kind people send.',
    '',
  ].join('\r\n');

const latencies: number[] = [];
let failures = 0;
let sent = 0;
const deadline = performance.now() + seconds * 1000;

async function worker(w: number): Promise<void> {
  while (performance.now() < deadline) {
    const user = `user${(w + sent) % USERS}`;
    const n = sent++;
    const transport = createTransport({
      host: '127.0.0.1',
      port,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user, pass: PASSWORD },
    });
    const t0 = performance.now();
    try {
      await transport.sendMail({
        envelope: { from: `${user}@bench.test`, to: ['someone@remote.example'] },
        raw: message(user, n),
      });
      latencies.push(performance.now() - t0);
    } catch (err) {
      failures++;
      if (failures <= 3) process.stderr.write(`session failed: ${(err as Error).message}\n`);
    } finally {
      transport.close();
    }
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
const elapsed = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
const result = {
  bench: 'submission AUTH+send on 465',
  hash: values.hash,
  filter: values.filter,
  concurrency,
  seconds: elapsed,
  sessions: latencies.length,
  failures,
  sessionsPerSecond: latencies.length / elapsed,
  latencyMs: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);

for (const s of running.reverse()) await s.stop();
await close();
await slapd.close();
await nats.stop();
await rm(tlsDir, { recursive: true, force: true });
