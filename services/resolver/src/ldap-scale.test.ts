/**
 * A 10,000-entry directory on a real slapd, through the running resolver: the
 * full read lands in one snapshot, every sampled address answers as the
 * directory says, and the figures are reported (refresh time, snapshot size,
 * heap, lookups/s over NATS) — reported, not asserted: the machine is shared.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { ldapRefreshReplySchema, lookupReplySchema, subjects } from '@sluice/proto';
import {
  type NatsTestServer,
  type SlapdServer,
  startNats,
  startServiceContext,
  startSlapd,
} from '@sluice/test-harness';
import { createResolverService } from './resolver-service.ts';

const N = 10_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let nats: NatsTestServer;
let slapd: SlapdServer;

before(async () => {
  nats = await startNats();
  slapd = await startSlapd(
    Array.from({ length: N }, (_, i) => ({
      uid: `u${i}`,
      forwards:
        i % 10 === 0 ? [] : [`u${i}@remote${i % 50}.test`, ...(i % 7 === 0 ? [`b${i}@backup.test`] : [])],
    })),
  );
});

after(async () => {
  await slapd?.close();
  await nats?.stop();
});

test('10,000 LDAP entries: one snapshot, correct answers, figures reported', async (t) => {
  const config = parseConfig(
    {
      domains: { primary: 'big.test' },
      routing: {
        ldap: {
          urls: [slapd.url],
          baseDn: slapd.baseDn,
          filter: '(objectClass=account)',
          refreshInterval: 1800,
          maxStaleness: 3600,
        },
      },
      nats: { servers: [nats.url] },
    },
    'ldap-scale',
  );
  const sc = await startServiceContext(config, 'ldap-scale');
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const svc = await createResolverService().start(sc.ctx);
  try {
    const t0 = performance.now();
    const raw = await sc.bus.request(subjects.resolverLdapRefresh, encoder.encode('{"v":1}'), 60_000);
    const refreshMs = performance.now() - t0;
    const reply = ldapRefreshReplySchema.parse(JSON.parse(decoder.decode(raw)));
    assert.notEqual(reply.outcome, 'failed', reply.message);
    assert.equal(reply.entries, N);
    global.gc?.();
    const heap1 = process.memoryUsage().heapUsed;

    const lookup = async (address: string) =>
      lookupReplySchema.parse(
        JSON.parse(
          decoder.decode(
            await sc.bus.request(
              subjects.resolverLookup,
              encoder.encode(JSON.stringify({ v: 1, address })),
              10_000,
            ),
          ),
        ),
      );
    const total = 4000;
    const concurrency = 32;
    let next = 0;
    let wrong = 0;
    const l0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let i = next++; i < total; i = next++) {
          const n = (i * 7919) % N;
          const r = await lookup(`u${n}@big.test`);
          const expected = n % 10 === 0 ? 'unknown' : 'ok';
          const targets = n % 10 === 0 ? 0 : n % 7 === 0 ? 2 : 1;
          if (r.result !== expected || r.targets.length !== targets) wrong++;
        }
      }),
    );
    const lookupMs = performance.now() - l0;
    assert.equal(wrong, 0);
    const stored = await sc.bus.ldapSnapshotGet();
    t.diagnostic(
      `${N} entries: refresh (LDAP read + KV write) ${Math.round(refreshMs)} ms; snapshot ${stored?.value.length} bytes gzip'd; ` +
        `resolver heap +${((heap1 - heap0) / 1048576).toFixed(1)} MiB (gc ${global.gc ? 'on' : 'off'}); ` +
        `${Math.round(total / (lookupMs / 1000))} lookups/s over NATS (${concurrency} concurrent, one process)`,
    );
  } finally {
    await svc.stop();
    await sc.close();
  }
});
