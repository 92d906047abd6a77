/**
 * Filter benchmark (`node bench/filter-verdict.ts`): verdicts per second and
 * verdict latency (p50/p99) for a 20 KB message with two DKIM signatures
 * (RSA-2048), over the real RPC path: a real nats-server, the filter service
 * as `sluice run` starts it (default policy: SPF, both DKIM signatures, DMARC,
 * ARC, header sanity, anti-spoofing), DNS answered by the harness' loopback
 * DNS server, requests sent by a Bus client with the envelope's body inline.
 * With BENCH_RSPAMD=1 a real rspamd (Debian's, started by the harness on a
 * loopback port) is asked too, and its score merged: the "with rspamd" figure.
 * Run once; prints a summary and writes bench/results/filter-verdict-<date>.json
 * (filter-verdict-rspamd-<date>.json with rspamd).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bus, busConfigFrom } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import { filterService } from '@sluice/filter';
import { encodeEnvelope, subjects } from '@sluice/proto';
import { startDnsServer, startNats, startRspamd, startServiceContext } from '@sluice/test-harness';
import { envelope, message, sign, testKey } from '../services/filter/src/test-messages.ts';

const TOTAL = 400;
const CONCURRENCY = 8;

const k1 = testKey('sender.test', 'sel');
const k2 = testKey('list.test', 'sel2');
const dns = await startDnsServer([
  k1.record,
  k2.record,
  { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
  { name: '_dmarc.sender.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
]);
const nats = await startNats();
const withRspamd = process.env['BENCH_RSPAMD'] === '1';
const rspamd = withRspamd ? await startRspamd({ dnsServer: dns.address }) : undefined;
const config = parseConfig(
  {
    hostname: 'mx.example.org',
    domains: { primary: 'example.org' },
    nats: { servers: [nats.url] },
    dns: { servers: [dns.address], timeout: 2 },
    log: { level: 'warn' },
    ...(rspamd
      ? {
          filter: {
            rspamd: { url: `http://${rspamd.host}:${rspamd.port}`, timeout: 10, onFailure: 'tempfail' },
          },
        }
      : {}),
  },
  'bench',
);
const svc = await startServiceContext(config, 'bench-filter');
const running = await filterService.start(svc.ctx);
const client = await Bus.connect(busConfigFrom(config, 'bench-client'));

const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
const body = await sign(message({ body: line.repeat(Math.ceil(20_000 / line.length)) }), [k1, k2]);
const env = envelope(body, '127.0.0.1');
const payload = encodeEnvelope(env, body);

// Warm-up (key fetches, JIT), then the measured run.
for (let i = 0; i < 20; i++) await client.request(subjects.filterVerdict, payload, 10_000);
const latencies: number[] = [];
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < TOTAL) {
      next++;
      const t = performance.now();
      const reply = JSON.parse(
        new TextDecoder().decode(await client.request(subjects.filterVerdict, payload, 10_000)),
      );
      latencies.push(performance.now() - t);
      if (reply.auth?.dmarc !== 'pass' || reply.auth.dkim.length !== 2)
        throw new Error(`unexpected: ${JSON.stringify(reply.auth)}`);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
const result = {
  at: new Date().toISOString(),
  rspamd: withRspamd,
  messageBytes: body.length,
  dkimSignatures: 2,
  verdicts: latencies.length,
  concurrency: CONCURRENCY,
  verdictsPerSecond: Math.round((latencies.length / seconds) * 10) / 10,
  p50Ms: Math.round(pct(50) * 10) / 10,
  p99Ms: Math.round(pct(99) * 10) / 10,
  maxMs: Math.round(latencies[latencies.length - 1]! * 10) / 10,
};
console.log(JSON.stringify(result, null, 2));
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, `filter-verdict-${withRspamd ? 'rspamd-' : ''}${result.at.slice(0, 10)}.json`),
  `${JSON.stringify(result, null, 2)}\n`,
);

await client.close();
await running.stop();
await svc.close();
await nats.stop();
await rspamd?.stop();
await dns.stop();
