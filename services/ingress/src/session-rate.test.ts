/**
 * Sessions per client IP per minute, shared by MX replicas (decision 0034):
 * two ingress instances on one real nats-server with
 * ingress.limits.sessionsPerMinute 3; a client alternating between them gets
 * three sessions in the minute, the fourth is refused on either replica with
 * 421 4.7.0 before the greeting. Plus the check's own rules: KV-safe keys per
 * minute, a KV error admits, a flood that loses every compare-and-set round
 * is refused.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { SessionCountContended } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import type { RunningService } from '@sluice/runtime';
import {
  type NatsTestServer,
  smtpConversation,
  startNats,
  startServiceContext,
  type TestServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { ingressService } from './ingress-service.ts';
import { sessionRateCheck, sessionRateKey } from './session-rate.ts';

describe('sessionRateCheck', () => {
  test('keys: per client and calendar minute, KV-safe for IPv6', () => {
    assert.equal(sessionRateKey('192.0.2.7', 120_000), '192.0.2.7.m2');
    assert.equal(sessionRateKey('2001:DB8::1', 179_999), '2001_db8__1.m2');
    assert.match(sessionRateKey('2001:db8::1', Date.now()), /^[-/_=.a-zA-Z0-9]+$/);
  });
  test('off at 0; over the limit 421 4.7.0; a KV error admits; lost races refuse', async () => {
    assert.equal(sessionRateCheck({ limit: 0, count: async () => 1, onError: () => {} }), undefined);
    let n = 0;
    const check = sessionRateCheck({ limit: 2, count: async () => ++n, onError: () => {} })!;
    assert.equal(await check('192.0.2.1'), undefined);
    assert.equal(await check('192.0.2.1'), undefined);
    assert.equal((await check('192.0.2.1'))?.enhanced, '4.7.0');
    const errors: unknown[] = [];
    const broken = sessionRateCheck({
      limit: 2,
      count: async () => {
        throw new Error('no responders');
      },
      onError: (e) => errors.push(e),
    })!;
    assert.equal(await broken('192.0.2.1'), undefined);
    assert.equal(errors.length, 1);
    const flooded = sessionRateCheck({
      limit: 2,
      count: async () => {
        throw new SessionCountContended('lost');
      },
      onError: () => {},
    })!;
    assert.equal((await flooded('192.0.2.1'))?.code, 421);
  });
});

describe('two replicas share the count (JetStream KV)', () => {
  let nats: NatsTestServer;
  const contexts: TestServiceContext[] = [];
  const replicas: RunningService[] = [];

  before(async () => {
    nats = await startNats();
    for (const name of ['a', 'b']) {
      const config = parseConfig(
        {
          hostname: 'mx.example.org',
          instance: `mx-${name}`,
          domains: { primary: 'example.org' },
          nats: { servers: [nats.url] },
          ingress: { listen: [{ host: '127.0.0.1', port: 0 }], limits: { sessionsPerMinute: 3 } },
          log: { level: 'warn' },
        },
        `session-rate-${name}`,
      );
      const c = await startServiceContext(config, `mx-${name}`, {
        logDestination: new Writable({ write: (_c, _e, cb) => cb() }) as never,
      });
      contexts.push(c);
      replicas.push(await ingressService.start(c.ctx));
    }
  });

  after(async () => {
    for (const r of replicas) await r.stop();
    for (const c of contexts) await c.close();
    await nats?.stop();
  });

  test('3 sessions a minute from one IP across both replicas; the 4th gets 421 4.7.0 on either', async () => {
    // The four sessions must fall in one calendar minute (the counter's window).
    await waitUntil('not at the end of a minute', () => Date.now() % 60_000 < 50_000, { timeoutMs: 15_000 });
    const [a, b] = replicas.map((r) => (r.info!() as { ports: number[] }).ports[0]!) as [number, number];
    const greetings: string[] = [];
    for (const port of [a, b, a]) greetings.push((await smtpConversation(port, ['QUIT']))[0]!);
    for (const g of greetings) assert.match(g, /^220 /);
    for (const port of [b, a]) {
      const [reply] = await smtpConversation(port, []);
      assert.equal(reply, '421 mx.example.org 4.7.0 Too many sessions from your address, try again later');
    }
    const refused = await contexts[0]!.ctx.metrics.rejected.get();
    assert.ok(refused.values.some((v) => v.labels.reason === 'limit-rate' && v.value >= 1));
  });
});
