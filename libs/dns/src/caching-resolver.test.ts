/**
 * The caching resolver against the harness' real loopback DNS server (UDP
 * and TCP): it answers exactly as node:dns does, and it asks the server only
 * when the TTL rules say so (counted at the server). Expiry is driven by the
 * resolver's injected monotonic clock, so no test sleeps for a TTL.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { type DnsRecord, type DnsServer, startDnsServer } from '@sluice/test-harness';
import * as dnsPacket from 'dns-packet';
import type { LookupSource } from './answer-cache.ts';
import {
  type CachingResolverOptions,
  createCachingResolver,
  type DnsResolve,
  readReply,
} from './caching-resolver.ts';

const BIG_KEY = `v=DKIM1; k=rsa; p=${'A'.repeat(1500)}`; // > 1232 bytes: truncated over UDP

const records: DnsRecord[] = [
  { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:192.0.2.0/24 -all', ttl: 30 },
  { name: 'sender.test', type: 'TXT', data: ['two ', 'strings', 'caf\u00e9'], ttl: 30 },
  { name: 'sender.test', type: 'MX', data: { preference: 10, exchange: 'mx.sender.test' }, ttl: 30 },
  { name: 'sender.test', type: 'MX', data: { preference: 5, exchange: 'mx2.sender.test' }, ttl: 30 },
  { name: 'nullmx.test', type: 'MX', data: { preference: 0, exchange: '.' } },
  { name: 'sender.test', type: 'A', data: '192.0.2.10', ttl: 30 },
  { name: 'sender.test', type: 'AAAA', data: '2001:db8::10', ttl: 30 },
  { name: 'long.test', type: 'A', data: '192.0.2.11', ttl: 3600 },
  { name: 'alias.test', type: 'CNAME', data: 'sender.test', ttl: 10 },
  { name: 'big.test', type: 'TXT', data: BIG_KEY },
  ...['n1', 'n2', 'n3', 'n4'].map((n): DnsRecord => ({ name: `${n}.test`, type: 'A', data: '192.0.2.1' })),
];

let dns: DnsServer;
let noSoa: DnsServer;
let blackhole: Socket;
let blackholeAddress: string;
let blackholeReceived = 0;

before(async () => {
  dns = await startDnsServer(records, { negativeTtl: 20 });
  noSoa = await startDnsServer(records, { negativeTtl: null });
  // A DNS server that never answers: every question is a timeout.
  blackhole = createSocket('udp4');
  blackhole.on('message', () => blackholeReceived++);
  await new Promise<void>((r) => blackhole.bind(0, '127.0.0.1', () => r()));
  blackholeAddress = `127.0.0.1:${blackhole.address().port}`;
});

after(async () => {
  await dns.stop();
  await noSoa.stop();
  blackhole.close();
});

/** A resolver with a clock the test moves by hand, and the sources of its answers as told to onLookup. */
function resolverAt(opts: Partial<CachingResolverOptions> = {}): {
  resolve: DnsResolve;
  clock: { ms: number };
  sources: LookupSource[];
} {
  const clock = { ms: 1_000_000 };
  const sources: LookupSource[] = [];
  const resolve = createCachingResolver({
    servers: [dns.address],
    timeoutSeconds: 2,
    cacheMaxTtlSeconds: 300,
    now: () => clock.ms,
    onLookup: (source) => sources.push(source),
    ...opts,
  });
  return { resolve, clock, sources };
}

/** The outcome as comparable text: the value, or the error's code and message. */
async function outcome(resolve: DnsResolve, name: string, type: string): Promise<string> {
  try {
    return JSON.stringify(await resolve(name, type));
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `error ${e.code}: ${e.message}`;
  }
}

/** Questions the server got for a name since `from`. */
const asked = (server: DnsServer, name: string, from = 0) =>
  server.queries.slice(from).filter((q) => q.name.toLowerCase() === name.toLowerCase()).length;

describe('answers are what node:dns gives', () => {
  const questions: Array<[string, string]> = [
    ['sender.test', 'TXT'],
    ['sender.test', 'MX'],
    ['nullmx.test', 'MX'],
    ['sender.test', 'A'],
    ['sender.test', 'AAAA'],
    ['alias.test', 'A'],
    ['alias.test', 'TXT'],
    ['alias.test', 'CNAME'],
    ['missing.test', 'TXT'], // NXDOMAIN
    ['_dmarc.sender.test', 'TXT'], // NXDOMAIN
    ['sender.test', 'CNAME'], // NODATA
    ['long.test', 'TXT'], // NODATA
    ['big.test', 'TXT'], // truncated over UDP, asked again over TCP
    ['SENDER.test.', 'A'],
  ];
  for (const [name, type] of questions) {
    test(`${name} ${type}`, async () => {
      const node = new Resolver({ timeout: 2000, tries: 1 });
      node.setServers([dns.address]);
      const { resolve } = resolverAt({ cacheMaxTtlSeconds: 0 });
      const expected = await outcome((n, t) => node.resolve(n, t) as Promise<string[]>, name, type);
      assert.equal(await outcome(resolve, name, type), expected);
    });
  }

  test('errors carry node’s code, syscall and hostname, and no stack frames', async () => {
    const { resolve } = resolverAt();
    const err = await resolve('missing.test', 'TXT').then(
      () => assert.fail('NXDOMAIN must reject'),
      (e: unknown) => e as Error & { code: string; syscall: string; hostname: string },
    );
    assert.ok(err instanceof Error);
    assert.deepEqual([err.code, err.syscall, err.hostname], ['ENOTFOUND', 'queryTxt', 'missing.test']);
    assert.equal(err.stack, `Error: ${err.message}`, 'no frames: building them is the cost we avoid');
  });
});

describe('positive answers are reused for their TTL', () => {
  test('a second lookup within the TTL asks nothing; the TTL ends it', async () => {
    const { resolve, clock, sources } = resolverAt();
    const from = dns.queries.length;
    const first = await resolve('sender.test', 'TXT');
    clock.ms += 29_900;
    assert.deepEqual(await resolve('sender.test', 'TXT'), first);
    assert.deepEqual(await resolve('Sender.Test.', 'TXT'), first, 'names compare case-insensitively');
    assert.equal(asked(dns, 'sender.test', from), 1);
    clock.ms += 100; // 30 s: the record's TTL
    assert.deepEqual(await resolve('sender.test', 'TXT'), first);
    assert.equal(asked(dns, 'sender.test', from), 2, 'asked again after the TTL');
    assert.deepEqual(sources, ['query', 'cache', 'cache', 'query']);
  });

  test('the TTL is capped at cacheMaxTtl', async () => {
    const { resolve, clock } = resolverAt({ cacheMaxTtlSeconds: 10 });
    const from = dns.queries.length;
    await resolve('long.test', 'A'); // TTL 3600
    clock.ms += 9_999;
    await resolve('long.test', 'A');
    assert.equal(asked(dns, 'long.test', from), 1);
    clock.ms += 1;
    await resolve('long.test', 'A');
    assert.equal(asked(dns, 'long.test', from), 2);
  });

  test('a CNAME chain lives as long as its shortest TTL', async () => {
    const { resolve, clock } = resolverAt();
    const from = dns.queries.length;
    assert.deepEqual(await resolve('alias.test', 'A'), ['192.0.2.10']);
    clock.ms += 9_999;
    await resolve('alias.test', 'A');
    assert.equal(asked(dns, 'alias.test', from), 1);
    clock.ms += 1; // the CNAME's 10 s, not the A record's 30 s
    await resolve('alias.test', 'A');
    assert.equal(asked(dns, 'alias.test', from), 2);
  });

  test('callers get copies: sorting one answer does not reorder the cached one', async () => {
    const { resolve } = resolverAt();
    const first = (await resolve('sender.test', 'MX')) as unknown as Array<{ priority: number }>;
    const order = first.map((m) => m.priority);
    first.sort((a, b) => b.priority - a.priority).reverse();
    first.length = 0;
    const second = (await resolve('sender.test', 'MX')) as unknown as Array<{ priority: number }>;
    assert.deepEqual(
      second.map((m) => m.priority),
      order,
    );
  });

  test('a truncated answer comes over TCP, and is cached like any other', async () => {
    const { resolve } = resolverAt();
    const from = dns.queries.length;
    const txt = (await resolve('big.test', 'TXT')) as string[][];
    assert.equal(txt[0]!.join(''), BIG_KEY);
    assert.deepEqual(
      dns.queries
        .slice(from)
        .filter((q) => q.name === 'big.test')
        .map((q) => q.transport),
      ['udp', 'tcp'],
    );
    await resolve('big.test', 'TXT');
    assert.equal(asked(dns, 'big.test', from), 2, 'the second lookup asked nothing');
  });

  test('cacheMaxTtl 0: every lookup asks', async () => {
    const { resolve } = resolverAt({ cacheMaxTtlSeconds: 0 });
    const from = dns.queries.length;
    await resolve('sender.test', 'A');
    await resolve('sender.test', 'A');
    assert.equal(asked(dns, 'sender.test', from), 2);
  });
});

describe('negative answers (RFC 2308)', () => {
  test('NXDOMAIN and NODATA are reused for the SOA’s negative TTL', async () => {
    const { resolve, clock } = resolverAt();
    const from = dns.queries.length;
    for (let i = 0; i < 3; i++) {
      assert.match(await outcome(resolve, '_dmarc.sender.test', 'TXT'), /ENOTFOUND/);
      assert.match(await outcome(resolve, 'long.test', 'TXT'), /ENODATA/);
    }
    assert.equal(asked(dns, '_dmarc.sender.test', from), 1);
    assert.equal(asked(dns, 'long.test', from), 1);
    clock.ms += 19_999;
    assert.match(await outcome(resolve, '_dmarc.sender.test', 'TXT'), /ENOTFOUND/);
    assert.equal(asked(dns, '_dmarc.sender.test', from), 1);
    clock.ms += 1; // the SOA's 20 s
    assert.match(await outcome(resolve, '_dmarc.sender.test', 'TXT'), /ENOTFOUND/);
    assert.match(await outcome(resolve, 'long.test', 'TXT'), /ENODATA/);
    assert.equal(asked(dns, '_dmarc.sender.test', from), 2);
    assert.equal(asked(dns, 'long.test', from), 2);
  });

  test('a negative answer without an SOA is not cached (RFC 2308 §5)', async () => {
    const { resolve } = resolverAt({ servers: [noSoa.address] });
    const from = noSoa.queries.length;
    assert.match(await outcome(resolve, 'missing.test', 'TXT'), /ENOTFOUND/);
    assert.match(await outcome(resolve, 'missing.test', 'TXT'), /ENOTFOUND/);
    assert.match(await outcome(resolve, 'long.test', 'TXT'), /ENODATA/);
    assert.match(await outcome(resolve, 'long.test', 'TXT'), /ENODATA/);
    assert.equal(asked(noSoa, 'missing.test', from), 2);
    assert.equal(asked(noSoa, 'long.test', from), 2);
  });

  test('the negative TTL is the smaller of the SOA’s TTL and its MINIMUM', () => {
    const soaReply = (ttl: number, minimum: number): dnsPacket.DecodedPacket =>
      dnsPacket.decode(
        dnsPacket.encode({
          type: 'response',
          id: 1,
          flags: 3, // NXDOMAIN
          questions: [{ type: 'TXT', name: 'x.test', class: 'IN' }],
          authorities: [
            {
              type: 'SOA',
              name: 'test',
              ttl,
              class: 'IN',
              data: {
                mname: 'ns.test',
                rname: 'h.test',
                serial: 1,
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum,
              },
            },
          ],
        }),
      );
    assert.deepEqual(readReply(soaReply(100, 30), 'x.test', 'TXT'), {
      value: { code: 'ENOTFOUND' },
      ttlSeconds: 30,
    });
    assert.deepEqual(readReply(soaReply(10, 30), 'x.test', 'TXT'), {
      value: { code: 'ENOTFOUND' },
      ttlSeconds: 10,
    });
  });
});

describe('failures are never cached', () => {
  test('SERVFAIL is asked again every time, and an answer after it is taken', async () => {
    const { resolve } = resolverAt();
    const from = dns.queries.length;
    dns.servfail(['sender.test']);
    try {
      assert.match(await outcome(resolve, 'sender.test', 'AAAA'), /ESERVFAIL/);
      assert.match(await outcome(resolve, 'sender.test', 'AAAA'), /ESERVFAIL/);
    } finally {
      dns.servfail([]);
    }
    assert.deepEqual(await resolve('sender.test', 'AAAA'), ['2001:db8::10']);
    assert.equal(asked(dns, 'sender.test', from), 3);
  });

  test('a timeout is asked again every time (ETIMEOUT)', async () => {
    const { resolve } = resolverAt({ servers: [blackholeAddress], timeoutSeconds: 0.2 });
    const before = blackholeReceived;
    assert.match(await outcome(resolve, 'sender.test', 'TXT'), /ETIMEOUT/);
    assert.match(await outcome(resolve, 'sender.test', 'TXT'), /ETIMEOUT/);
    assert.equal(blackholeReceived - before, 2);
  });

  test('a server that does not answer is passed over for the next one', async () => {
    const { resolve } = resolverAt({ servers: [blackholeAddress, dns.address], timeoutSeconds: 0.2 });
    assert.deepEqual(await resolve('sender.test', 'A'), ['192.0.2.10']);
  });
});

describe('sharing and bounds', () => {
  test('concurrent identical questions share one query', async () => {
    const { resolve, sources } = resolverAt();
    const from = dns.queries.length;
    const answers = await Promise.all(Array.from({ length: 5 }, () => resolve('sender.test', 'MX')));
    assert.equal(asked(dns, 'sender.test', from), 1);
    assert.deepEqual(sources, ['query', 'shared', 'shared', 'shared', 'shared']);
    for (const a of answers) assert.deepEqual(a, answers[0]);
    assert.notEqual(answers[0], answers[1], 'each caller gets its own array');
  });

  test('concurrent identical questions share one SERVFAIL too, and it is not kept', async () => {
    const { resolve } = resolverAt();
    const from = dns.queries.length;
    dns.servfail(['n4.test']);
    try {
      const all = await Promise.all(Array.from({ length: 3 }, () => outcome(resolve, 'n4.test', 'A')));
      for (const o of all) assert.match(o, /ESERVFAIL/);
      assert.equal(asked(dns, 'n4.test', from), 1);
    } finally {
      dns.servfail([]);
    }
    assert.deepEqual(await resolve('n4.test', 'A'), ['192.0.2.1']);
    assert.equal(asked(dns, 'n4.test', from), 2);
  });

  test('at most cacheMaxEntries are kept; the least recently used goes first', async () => {
    const { resolve } = resolverAt({ cacheMaxEntries: 3 });
    const from = dns.queries.length;
    await resolve('n1.test', 'A');
    await resolve('n2.test', 'A');
    await resolve('n3.test', 'A');
    await resolve('n1.test', 'A'); // a hit: n1 is now the most recently used
    await resolve('n4.test', 'A'); // evicts n2
    await resolve('n1.test', 'A');
    await resolve('n3.test', 'A');
    await resolve('n4.test', 'A');
    assert.deepEqual(
      ['n1', 'n2', 'n3', 'n4'].map((n) => asked(dns, `${n}.test`, from)),
      [1, 1, 1, 1],
    );
    await resolve('n2.test', 'A');
    assert.equal(asked(dns, 'n2.test', from), 2, 'n2 was evicted');
  });
});
