/**
 * Delivery planning without SMTP: where to connect (against a real DNS
 * server on loopback, asked through node:dns like in production), what a
 * reply means, when to retry and when to give up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type DnsServer, startDnsServer } from '@sluice/test-harness';
import { createDnsLookup, type DnsLookup, destinationFor, MAX_CANDIDATES } from './destination.ts';
import { ledgerKey } from './ledger.ts';
import { oneLine, outcomeOfCode, replyCode } from './outcome.ts';
import { describeDuration, isExpired, retryDelayMs } from './retry-schedule.ts';

let dnsServer: DnsServer;
let dns: DnsLookup;

before(async () => {
  dnsServer = await startDnsServer([
    { name: 'multi.test', type: 'MX', data: { preference: 20, exchange: 'backup.multi.test' } },
    { name: 'multi.test', type: 'MX', data: { preference: 10, exchange: 'mx1.multi.test' } },
    { name: 'mx1.multi.test', type: 'A', data: '127.0.0.11' },
    { name: 'mx1.multi.test', type: 'AAAA', data: '::1' },
    { name: 'backup.multi.test', type: 'A', data: '127.0.0.12' },
    { name: 'nullmx.test', type: 'MX', data: { preference: 0, exchange: '.' } },
    { name: 'nullmx.test', type: 'A', data: '127.0.0.13' },
    { name: 'implicit.test', type: 'A', data: '127.0.0.14' },
    { name: 'nomail.test', type: 'TXT', data: 'v=spf1 -all' },
    { name: 'dangling.test', type: 'MX', data: { preference: 10, exchange: 'missing.dangling.test' } },
    { name: 'many.test', type: 'MX', data: { preference: 10, exchange: 'pool.many.test' } },
    ...Array.from({ length: 8 }, (_, i) => ({
      name: 'pool.many.test',
      type: 'A' as const,
      data: `127.0.1.${i + 1}`,
    })),
  ]);
  dns = createDnsLookup({ servers: [dnsServer.address], timeout: 2 });
});

after(async () => {
  await dnsServer?.stop();
});

describe('destinationFor', () => {
  test('a transport route is its host and port, no DNS', async () => {
    const before = dnsServer.queries.length;
    const plan = await destinationFor(
      { kind: 'smtp', name: 'lists.test', host: 'lists.internal', port: 2525, lmtp: true },
      dns,
    );
    assert.deepEqual(plan, {
      kind: 'candidates',
      candidates: [{ host: 'lists.internal', port: 2525, lmtp: true, label: 'lists.internal:2525' }],
    });
    assert.equal(dnsServer.queries.length, before);
  });

  test('MX hosts in preference order, AAAA before A, on port 25 with the MX name for SNI', async () => {
    const plan = await destinationFor({ kind: 'mx', domain: 'multi.test' }, dns);
    assert.equal(plan.kind, 'candidates');
    assert.deepEqual(
      plan.kind === 'candidates' ? plan.candidates.map((c) => [c.host, c.port, c.servername, c.label]) : [],
      [
        ['::1', 25, 'mx1.multi.test', 'mx1.multi.test[::1]:25'],
        ['127.0.0.11', 25, 'mx1.multi.test', 'mx1.multi.test[127.0.0.11]:25'],
        ['127.0.0.12', 25, 'backup.multi.test', 'backup.multi.test[127.0.0.12]:25'],
      ],
    );
  });

  test('equal preferences are tried in random order (RFC 5321 §5.1)', async () => {
    const fake: DnsLookup = {
      resolveMx: async () => [
        { exchange: 'a.test', priority: 10 },
        { exchange: 'b.test', priority: 10 },
        { exchange: 'c.test', priority: 5 },
      ],
      resolveAddresses: async (h) => [
        h === 'a.test' ? '192.0.2.1' : h === 'b.test' ? '192.0.2.2' : '192.0.2.3',
      ],
    };
    const order = async (r: number[]) => {
      const plan = await destinationFor({ kind: 'mx', domain: 'x.test' }, fake, { random: () => r.shift()! });
      return plan.kind === 'candidates' ? plan.candidates.map((c) => c.servername) : [];
    };
    assert.deepEqual(await order([0.9, 0.1, 0.5]), ['c.test', 'b.test', 'a.test']);
    assert.deepEqual(await order([0.1, 0.9, 0.5]), ['c.test', 'a.test', 'b.test']);
  });

  test('no MX records: the domain itself is the implicit MX (RFC 5321 §5.1)', async () => {
    const plan = await destinationFor({ kind: 'mx', domain: 'implicit.test' }, dns, { mxPort: 2525 });
    assert.deepEqual(plan, {
      kind: 'candidates',
      candidates: [
        {
          host: '127.0.0.14',
          port: 2525,
          servername: 'implicit.test',
          lmtp: false,
          label: 'implicit.test[127.0.0.14]:2525',
        },
      ],
    });
  });

  test('a null MX is a permanent failure, 556 5.1.10 (RFC 7505)', async () => {
    const plan = await destinationFor({ kind: 'mx', domain: 'nullmx.test' }, dns);
    assert.equal(plan.kind, 'unroutable');
    assert.ok(plan.kind === 'unroutable' && plan.permanent);
    assert.match(
      plan.kind === 'unroutable' ? plan.reply : '',
      /^556 5\.1\.10 \(sluice\) nullmx\.test publishes a null MX/,
    );
  });

  test('NXDOMAIN and a domain without MX or address are permanent; a missing MX host address is not', async () => {
    const nx = await destinationFor({ kind: 'mx', domain: 'does-not-exist.test' }, dns);
    assert.deepEqual(nx, {
      kind: 'unroutable',
      permanent: true,
      reply: '550 5.1.2 (sluice) domain does-not-exist.test does not exist (DNS NXDOMAIN)',
    });
    const none = await destinationFor({ kind: 'mx', domain: 'nomail.test' }, dns);
    assert.deepEqual(none, {
      kind: 'unroutable',
      permanent: true,
      reply: '550 5.1.2 (sluice) nomail.test has no MX and no address records',
    });
    const dangling = await destinationFor({ kind: 'mx', domain: 'dangling.test' }, dns);
    assert.deepEqual(dangling, {
      kind: 'unroutable',
      permanent: false,
      reply: '451 4.4.4 (sluice) no address found for the mail hosts of dangling.test',
    });
  });

  test('a DNS server that does not answer is a temporary failure', async () => {
    const silent = await startDnsServer([]);
    await silent.stop(); // nothing listens on its port any more
    const dead = createDnsLookup({ servers: [silent.address], timeout: 0.3 });
    const plan = await destinationFor({ kind: 'mx', domain: 'multi.test' }, dead);
    assert.equal(plan.kind, 'unroutable');
    assert.ok(plan.kind === 'unroutable' && !plan.permanent);
    assert.match(
      plan.kind === 'unroutable' ? plan.reply : '',
      /^451 4\.4\.3 \(sluice\) DNS lookup of MX of multi\.test failed \(E[A-Z]+\)$/,
    );
  });

  test(`at most ${MAX_CANDIDATES} addresses are tried per attempt`, async () => {
    const plan = await destinationFor({ kind: 'mx', domain: 'many.test' }, dns);
    assert.equal(plan.kind === 'candidates' ? plan.candidates.length : 0, MAX_CANDIDATES);
  });
});

describe('outcomes, retries, ledger keys', () => {
  test('2xx delivered, 5xx failed, 4xx and no reply deferred (RFC 5321 §4.2.1)', () => {
    assert.equal(outcomeOfCode(replyCode('250 2.0.0 Ok')), 'delivered');
    assert.equal(outcomeOfCode(replyCode('550 5.1.1 no such user')), 'failed');
    assert.equal(outcomeOfCode(replyCode('451 4.7.1 greylisted')), 'deferred');
    assert.equal(outcomeOfCode(replyCode('connection reset')), 'deferred');
    assert.equal(oneLine('550-5.7.1 first\n550 5.7.1 second'), '550-5.7.1 first / 550 5.7.1 second');
  });

  test('the retry schedule is indexed by attempt, its last value repeating', () => {
    const schedule = [60, 300, 900];
    assert.deepEqual(
      [1, 2, 3, 4, 10].map((n) => retryDelayMs(schedule, n)),
      [60_000, 300_000, 900_000, 900_000, 900_000],
    );
    assert.equal(retryDelayMs([0.2], 7), 200);
  });

  test('a message expires queueLifetime after it was received', () => {
    const receivedAt = '2026-01-01T00:00:00.000Z';
    const t0 = Date.parse(receivedAt);
    assert.equal(isExpired(receivedAt, t0 + 5 * 86400_000 - 1, 5 * 86400), false);
    assert.equal(isExpired(receivedAt, t0 + 5 * 86400_000, 5 * 86400), true);
    assert.equal(describeDuration(5 * 86400), '5 days');
    assert.equal(describeDuration(1), '1 second');
  });

  test('ledger keys are per message and final recipient, without the address in clear', () => {
    const k = ledgerKey('01JTESTQUEUEID0000000000AB', 'alice@example.net');
    assert.match(k, /^01JTESTQUEUEID0000000000AB\.[0-9a-f]{32}$/);
    assert.ok(!k.includes('alice'));
    assert.notEqual(k, ledgerKey('01JTESTQUEUEID0000000000AB', 'bob@example.net'));
    assert.notEqual(k, ledgerKey('01JTESTQUEUEID0000000000AC', 'alice@example.net'));
    // RFC 5321 §2.4: the domain is case-insensitive, the local part is not.
    assert.equal(k, ledgerKey('01JTESTQUEUEID0000000000AB', 'alice@Example.NET'));
    assert.notEqual(k, ledgerKey('01JTESTQUEUEID0000000000AB', 'Alice@example.net'));
  });
});
