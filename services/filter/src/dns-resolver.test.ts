/**
 * The filter's DNS resolver against a real DNS server (the harness'): a
 * question asked again while it is in flight shares the query, every asker
 * gets its own copy of the answer (or the same error code), and nothing is
 * kept once answered.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, it } from 'node:test';
import { type DnsServer, startDnsServer } from '@sluice/test-harness';
import { createDnsResolver } from './dns-resolver.ts';

let dns: DnsServer;
before(async () => {
  dns = await startDnsServer([
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: 'sender.test', type: 'MX', data: { preference: 10, exchange: 'mx.sender.test' } },
  ]);
});
after(() => dns.stop());

const asked = (name: string) => dns.queries.filter((q) => q.name.toLowerCase() === name).length;

describe('filter DNS resolver', () => {
  it('shares a question in flight: one query, an answer of its own for every asker', async () => {
    const resolve = createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 });
    const before = asked('sender.test');
    const answers = (await Promise.all([
      resolve('sender.test', 'TXT'),
      resolve('SENDER.test', 'TXT'),
      resolve('sender.test', 'TXT'),
    ])) as string[][][];
    assert.equal(asked('sender.test') - before, 1);
    for (const a of answers) assert.deepEqual(a, [['v=spf1 ip4:127.0.0.1 -all']]);
    assert.notEqual(answers[0], answers[1]);
    assert.notEqual(answers[0]![0], answers[1]![0]);
  });

  it('asks each type apart, and keeps nothing once answered', async () => {
    const resolve = createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 });
    const before = asked('sender.test');
    const [txt, mx] = await Promise.all([resolve('sender.test', 'TXT'), resolve('sender.test', 'MX')]);
    assert.deepEqual(txt, [['v=spf1 ip4:127.0.0.1 -all']]);
    const direct = new Resolver();
    direct.setServers([dns.address]);
    assert.deepEqual(mx, await direct.resolve('sender.test', 'MX'));
    await resolve('sender.test', 'TXT');
    assert.equal(asked('sender.test') - before, 4); // TXT, MX, the direct MX, TXT again
  });

  it('gives every asker of a shared question the error, with its code', async () => {
    const resolve = createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 });
    const before = asked('_dmarc.sender.test');
    const results = await Promise.allSettled([
      resolve('_dmarc.sender.test', 'TXT'),
      resolve('_dmarc.sender.test', 'TXT'),
    ]);
    assert.equal(asked('_dmarc.sender.test') - before, 1);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.equal((r.reason as NodeJS.ErrnoException).code, 'ENOTFOUND');
    }
  });
});
