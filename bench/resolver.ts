/**
 * Resolver benchmark (`npm run bench:resolver`): what an LDAP-backed routing
 * table costs at 10,000 and 100,000 entries (issue 12), with the real parts:
 * a real slapd loaded by slapadd with a generated userdir-ldap-like directory
 * (test/harness directory-entries.ts), a real nats-server (JetStream), and the
 * resolver service in this process. For each size N it measures
 *   - slapd load: slapadd of the LDIF + start, until it listens;
 *   - a full refresh (LDAP read + KV snapshot write), asked for over the
 *     resolver's refresh RPC, and the stored snapshot's size (gzip'd);
 *   - memory: the routing table alone (heap after `global.gc()` before and
 *     after building it from the decoded snapshot, the table kept alive), and
 *     the whole service's heap and RSS growth across the refresh (gc'd before
 *     each reading; RSS is the process', so it includes V8's free pages);
 *   - lookups, each after a warm-up: lookupAddress in process, and over NATS
 *     request/reply (the RPC the ingress calls at RCPT time) with C concurrent
 *     requests: rate and p50/p99 latency; every answer is checked against the
 *     generator's rule;
 *   - resolve: M envelopes of R directory recipients each published to the
 *     resolve stream, after a warm-up of M/10: the rate from the first publish
 *     until the resolver has acked all of them, and the parts it published on
 *     the rewrite stream (nothing consumes them).
 * Run with --expose-gc (the npm script does). The machine's load average is
 * recorded: the figures are for this machine on this day, not a target.
 *
 * Env: BENCH_SIZES (default 10000,100000), BENCH_LOOKUPS (20000),
 * BENCH_NATS_LOOKUPS (10000), BENCH_CONCURRENCY (32), BENCH_ENVELOPES (2000),
 * BENCH_RECIPIENTS (5).
 * Output: a table on stdout and bench/results/resolver-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import {
  type Envelope,
  ldapRefreshReplySchema,
  lookupReplySchema,
  newQueueId,
  parseEnvelope,
  streams,
  subjects,
} from '@sluice/proto';
import { buildRoutingTable, createResolverService, decodeSnapshot, lookupAddress } from '@sluice/resolver';
import {
  directoryEntries,
  directoryForwards,
  forwardingIndex,
  sampleIndex,
  stageAcks,
  startNats,
  startServiceContext,
  startSlapd,
  waitUntil,
} from '@sluice/test-harness';

const SIZES = (process.env.BENCH_SIZES ?? '10000,100000').split(',').map(Number);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 20_000);
const NATS_LOOKUPS = Number(process.env.BENCH_NATS_LOOKUPS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ENVELOPES = Number(process.env.BENCH_ENVELOPES ?? 2000);
const RECIPIENTS = Number(process.env.BENCH_RECIPIENTS ?? 5);
const DOMAIN = 'big.test';
const MiB = 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

if (!global.gc) throw new Error('run with node --expose-gc (npm run bench:resolver does)');
const gc = global.gc;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** What the generator says address u<i>@DOMAIN resolves to. */
function expected(i: number): { result: string; targets: number } {
  const f = directoryForwards(i);
  return { result: f.length === 0 ? 'unknown' : 'ok', targets: f.length };
}

function configFor(natsUrl: string, ldapUrl: string, baseDn: string): SluiceConfig {
  return parseConfig(
    {
      domains: { primary: DOMAIN },
      routing: {
        ldap: {
          urls: [ldapUrl],
          baseDn,
          filter: '(objectClass=account)',
          refreshInterval: 3600,
          maxStaleness: 7200,
        },
      },
      nats: { servers: [natsUrl] },
    },
    'bench-resolver',
  );
}

async function runSize(n: number) {
  // A nats-server per size: no stream, bucket or snapshot left over from the previous one.
  const nats = await startNats();
  const s0 = performance.now();
  const slapd = await startSlapd(directoryEntries(n));
  const slapdLoadMs = performance.now() - s0;
  const sc = await startServiceContext(configFor(nats.url, slapd.url, slapd.baseDn), `bench-${n}`);
  const jsm = await sc.bus.js.jetstreamManager();
  // The resolver's first refresh starts with the service (the keeper refreshes at start); the
  // refresh RPC joins it and answers when the snapshot is stored. Memory is read around both.
  const heapBefore = heapAfterGc();
  const rssBefore = process.memoryUsage().rss;
  const r0 = performance.now();
  const svc = await createResolverService().start(sc.ctx);
  try {
    const refresh = async (force: boolean) => {
      const raw = await sc.bus.request(
        subjects.resolverLdapRefresh,
        encoder.encode(JSON.stringify({ v: 1, force })),
        300_000,
      );
      const reply = ldapRefreshReplySchema.parse(JSON.parse(decoder.decode(raw)));
      if (reply.outcome === 'failed' || reply.entries !== n)
        throw new Error(`refresh of ${n} entries: ${reply.outcome} ${reply.entries} ${reply.message}`);
      return reply;
    };
    const first = await refresh(false);
    const refreshMs = performance.now() - r0;
    const serviceHeapMiB = (heapAfterGc() - heapBefore) / MiB;
    const serviceRssMiB = (process.memoryUsage().rss - rssBefore) / MiB;
    // A second full refresh of the same directory (outcome unchanged: the snapshot is stored again
    // with its new fetchedAt, and the table rebuilt from it).
    const rr0 = performance.now();
    const second = await refresh(false);
    const rereadMs = performance.now() - rr0;
    const stored = await sc.bus.ldapSnapshotGet();
    if (!stored) throw new Error('no snapshot in the KV bucket after the refresh');
    const snapshotBytes = stored.value.length;

    // --- the routing table alone: built from the decoded snapshot, kept alive while measured
    const snap = decodeSnapshot(stored.value);
    const ldap = { version: snap.version, fetchedAt: snap.fetchedAt, entries: snap.entries };
    const t0 = heapAfterGc();
    const b0 = performance.now();
    const table = buildRoutingTable(sc.ctx.config, ldap);
    const buildMs = performance.now() - b0;
    const tableHeapMiB = (heapAfterGc() - t0) / MiB;

    // --- lookups in process (after a warm-up of the same size, so the JIT has compiled the path)
    let wrong = 0;
    for (let k = 0; k < LOOKUPS; k++) lookupAddress(table, `u${sampleIndex(k + 1, n)}@${DOMAIN}`);
    const l0 = performance.now();
    for (let k = 0; k < LOOKUPS; k++) {
      const i = sampleIndex(k, n);
      const r = lookupAddress(table, `u${i}@${DOMAIN}`);
      const e = expected(i);
      if (r.result !== e.result || r.targets.length !== e.targets) wrong++;
    }
    const inProcessPerSec = LOOKUPS / ((performance.now() - l0) / 1000);

    // --- lookups over NATS (the ingress' RCPT-time RPC), C at a time, after a warm-up
    const natsLookups = async (total: number, offset: number) => {
      const latencies: number[] = [];
      let next = 0;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let k = next++; k < total; k = next++) {
            const i = sampleIndex(k + offset, n);
            const q0 = performance.now();
            const answer = lookupReplySchema.parse(
              JSON.parse(
                decoder.decode(
                  await sc.bus.request(
                    subjects.resolverLookup,
                    encoder.encode(JSON.stringify({ v: 1, address: `u${i}@${DOMAIN}` })),
                    30_000,
                  ),
                ),
              ),
            );
            latencies.push(performance.now() - q0);
            const e = expected(i);
            if (answer.result !== e.result || answer.targets.length !== e.targets) wrong++;
          }
        }),
      );
      return { perSec: total / ((performance.now() - t) / 1000), latencies: latencies.sort((a, b) => a - b) };
    };
    await natsLookups(Math.ceil(NATS_LOOKUPS / 10), 0);
    const { perSec: natsPerSec, latencies } = await natsLookups(NATS_LOOKUPS, LOOKUPS);
    if (wrong > 0) throw new Error(`${wrong} lookups answered otherwise than the directory says`);

    // --- the resolve stage: M envelopes of R recipients each, after a warm-up of M/10
    const body = encoder.encode('Subject: bench\r\n\r\nhello\r\n');
    let k = 0;
    const resolveRun = async (total: number) => {
      const acks0 = await stageAcks(sc.ctx.metrics, 'resolver');
      const parts0 = (await jsm.streams.info(streams.rewrite.name)).state.messages;
      let published = 0;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let m = published++; m < total; m = published++) {
            const id = newQueueId();
            const stored = await sc.bus.storeBody(id, body);
            const recipients = Array.from({ length: RECIPIENTS }, () => {
              const address = `u${forwardingIndex(k++, n)}@${DOMAIN}`;
              return { address, original: address };
            });
            const env: Envelope = parseEnvelope({
              v: 1,
              id,
              receivedAt: new Date().toISOString(),
              source: 'mx',
              receivedBy: `mx.${DOMAIN}`,
              client: { ip: '192.0.2.1', helo: 'bench.test' },
              mailFrom: { address: 'sender@sender.test' },
              recipients,
              body: stored.ref,
              hops: [{ stage: 'ingress', instance: 'bench', at: new Date().toISOString() }],
            });
            await sc.bus.publishEnvelope(subjects.resolve, env, stored.inline, { msgId: `${id}:resolve` });
          }
        }),
      );
      await waitUntil(
        `${total} envelopes resolved`,
        async () => (await stageAcks(sc.ctx.metrics, 'resolver')) - acks0 >= total,
        { timeoutMs: 600_000, intervalMs: 20 },
      );
      const seconds = (performance.now() - t) / 1000;
      const parts = (await jsm.streams.info(streams.rewrite.name)).state.messages - parts0;
      return { seconds, parts };
    };
    await resolveRun(Math.ceil(ENVELOPES / 10));
    const { seconds: resolveS, parts } = await resolveRun(ENVELOPES);

    return {
      entries: n,
      slapdLoadMs: Math.round(slapdLoadMs),
      refreshMs: Math.round(refreshMs),
      refreshOutcome: first.outcome,
      rereadMs: Math.round(rereadMs),
      rereadOutcome: second.outcome,
      snapshotBytes,
      tableBuildMs: Math.round(buildMs),
      tableHeapMiB: Number(tableHeapMiB.toFixed(1)),
      serviceHeapGrowthMiB: Number(serviceHeapMiB.toFixed(1)),
      processRssGrowthMiB: Number(serviceRssMiB.toFixed(1)),
      lookupsPerSecInProcess: Math.round(inProcessPerSec),
      lookupsPerSecOverNats: Math.round(natsPerSec),
      natsLookupP50Ms: Number(percentile(latencies, 50).toFixed(2)),
      natsLookupP99Ms: Number(percentile(latencies, 99).toFixed(2)),
      envelopesPerSec: Math.round(ENVELOPES / resolveS),
      partsPerSec: Math.round(parts / resolveS),
      parts,
      keptAlive: table.rules.size > 0,
    };
  } finally {
    await svc.stop();
    await sc.close();
    await slapd.close();
    await nats.stop();
  }
}

const loadAtStart = loadavg();
const rows: Awaited<ReturnType<typeof runSize>>[] = [];
for (const n of SIZES) {
  process.stderr.write(`resolver bench: ${n} entries...\n`);
  rows.push(await runSize(n));
}
const loadAtEnd = loadavg();

const result = {
  bench: 'resolver',
  date: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    node: process.version,
    loadavgAtStart: loadAtStart.map((x) => Number(x.toFixed(2))),
    loadavgAtEnd: loadAtEnd.map((x) => Number(x.toFixed(2))),
  },
  load: {
    lookupsInProcess: LOOKUPS,
    lookupsOverNats: NATS_LOOKUPS,
    natsConcurrency: CONCURRENCY,
    envelopes: ENVELOPES,
    recipientsPerEnvelope: RECIPIENTS,
  },
  method: {
    tableHeap: 'heapUsed after global.gc() before and after buildRoutingTable from the decoded KV snapshot',
    serviceHeap:
      'heapUsed after global.gc() before the service start and after its first snapshot (resolver in this process)',
    rss: 'process RSS before the service start and after its first snapshot (includes V8 free pages; one process: bench + resolver)',
    resolve:
      'publish to the resolve stream until the resolver acked all; parts counted on the rewrite stream',
  },
  rows: rows.map(({ keptAlive: _k, ...r }) => r),
};

const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `resolver-${result.date.slice(0, 10)}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
const table = [
  line(['entries', ...rows.map((r) => r.entries.toLocaleString('en'))]),
  line(['---', ...rows.map(() => '---:')]),
  line(['slapd load (slapadd + start)', ...rows.map((r) => `${(r.slapdLoadMs / 1000).toFixed(1)} s`)]),
  line([
    'first refresh (service start, LDAP read, KV write)',
    ...rows.map((r) => `${(r.refreshMs / 1000).toFixed(1)} s`),
  ]),
  line(['refresh again, directory unchanged', ...rows.map((r) => `${(r.rereadMs / 1000).toFixed(1)} s`)]),
  line(['snapshot (gzip)', ...rows.map((r) => `${Math.round(r.snapshotBytes / 1024)} KiB`)]),
  line(['routing table build', ...rows.map((r) => `${r.tableBuildMs} ms`)]),
  line(['routing table heap', ...rows.map((r) => `${r.tableHeapMiB} MiB`)]),
  line(['service heap growth (refresh)', ...rows.map((r) => `${r.serviceHeapGrowthMiB} MiB`)]),
  line(['process RSS growth (refresh)', ...rows.map((r) => `${r.processRssGrowthMiB} MiB`)]),
  line(['lookups/s in process', ...rows.map((r) => r.lookupsPerSecInProcess.toLocaleString('en'))]),
  line([
    `lookups/s over NATS (${CONCURRENCY} concurrent)`,
    ...rows.map((r) => r.lookupsPerSecOverNats.toLocaleString('en')),
  ]),
  line(['NATS lookup p50 / p99', ...rows.map((r) => `${r.natsLookupP50Ms} / ${r.natsLookupP99Ms} ms`)]),
  line([
    `resolved envelopes/s (${RECIPIENTS} rcpts)`,
    ...rows.map((r) => r.envelopesPerSec.toLocaleString('en')),
  ]),
  line(['parts/s on the rewrite stream', ...rows.map((r) => r.partsPerSec.toLocaleString('en'))]),
];
console.log(table.join('\n'));
console.log(
  `load average ${result.machine.loadavgAtStart.join(' ')} at start, ${result.machine.loadavgAtEnd.join(' ')} at end; ${result.machine.cpus} CPUs`,
);
console.log(`written ${file}`);
