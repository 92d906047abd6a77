/**
 * The filter's policy over real DKIM-signed messages and a real DNS server on
 * loopback (SPF, DKIM keys, DMARC records, DNS lists): DMARC pass/fail with
 * alignment and the RFC 9989 tree walk, the l= and unevaluable-author rules,
 * anti-spoofing of our domains, forged Authentication-Results, header
 * sanity, DNS lists, the RFC 7208 SPF cases that matter, and DNS timeouts.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '@sluice/config';
import { withoutHeaderFields } from '@sluice/smtp';
import { type DnsServer, startDnsServer } from '@sluice/test-harness';
import { sealMessage } from 'mailauth';
import { authenticateMessage } from './authentication.ts';
import { createDnsResolver } from './dns-resolver.ts';
import { headerFields } from './header-block.ts';
import { authorDomains } from './rules/anti-spoofing.ts';
import { DnsListCache, dnsListHits } from './rules/dns-lists.ts';
import { envelope, message, sign, type TestKey, testKey } from './test-messages.ts';
import { computeVerdict, type FilterPolicy } from './verdict.ts';

const AUTHSERV = 'mx.example.org';
const FOREIGN_IP = '192.0.2.9';
let dns: DnsServer;
let blackhole: Socket;
let blackholeAddress: string;
let sender: TestKey;
let list: TestKey;
let walk: TestKey;

const defaults = configSchema.parse({ domains: { primary: 'example.org' } }).filter;

function policy(over: Partial<FilterPolicy> = {}): FilterPolicy {
  return {
    weights: defaults.weights,
    thresholds: defaults.actions,
    antiSpoofing: 'reject',
    ourDomains: new Set(['example.org', 'example.net']),
    engines: [],
    ...over,
  };
}

const deps = (p: FilterPolicy = policy()) => ({
  authservId: AUTHSERV,
  resolver: createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 }),
  policy: p,
});

before(async () => {
  sender = testKey('sender.test', 'sel');
  list = testKey('list.test', 'sel2');
  walk = testKey('walk.test', 'w1');
  dns = await startDnsServer([
    sender.record,
    list.record,
    walk.record,
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: '_dmarc.sender.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
    { name: 'list.test', type: 'TXT', data: 'v=spf1 -all' },
    // RFC 9989 tree walk: no record at mail.walk.test, the Organizational Domain's above it.
    { name: 'walk.test', type: 'TXT', data: 'v=spf1 -all' },
    { name: '_dmarc.walk.test', type: 'TXT', data: 'v=DMARC1; p=reject; np=quarantine' },
    { name: 'mail.walk.test', type: 'A', data: '192.0.2.80' },
    // RFC 7208 cases
    { name: 'soft.test', type: 'TXT', data: 'v=spf1 ~all' },
    { name: 'neutral.test', type: 'TXT', data: 'v=spf1 ?all' },
    { name: 'inc.test', type: 'TXT', data: 'v=spf1 include:sender.test -all' },
    { name: 'redir.test', type: 'TXT', data: 'v=spf1 redirect=sender.test' },
    { name: 'broken.test', type: 'TXT', data: 'v=spf1 ip4:300.1.2.3 -all' },
    { name: 'two.test', type: 'TXT', data: ['v=spf1 -all'] },
    { name: 'two.test', type: 'TXT', data: ['v=spf1 +all'] },
    { name: 'void.test', type: 'TXT', data: 'v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test -all' },
    { name: 'helo.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: 'nospf.test', type: 'A', data: '192.0.2.1' },
    ...Array.from({ length: 11 }, (_, i) => ({
      name: `l${i}.loop.test`,
      type: 'TXT' as const,
      data: `v=spf1 include:l${i + 1}.loop.test -all`,
    })),
    { name: 'l11.loop.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    // DNS lists (RFC 5782 §2.1 reversed octets; §5 127.0.0.2 "listed")
    { name: '9.2.0.192.bl.test', type: 'A', data: '127.0.0.2' },
    { name: 'bad.test.uribl.test', type: 'A', data: '127.0.0.2' },
  ]);
  // A DNS "server" that reads questions and never answers: the timeout case.
  blackhole = createSocket('udp4');
  await new Promise<void>((r) => blackhole.bind(0, '127.0.0.1', () => r()));
  blackholeAddress = `127.0.0.1:${blackhole.address().port}`;
});

after(async () => {
  await dns?.stop();
  blackhole?.close();
});

const names = (r: { verdict: { rules: { name: string }[] } }) => r.verdict.rules.map((h) => h.name);

describe('DMARC (RFC 9989)', () => {
  test('two DKIM signatures, aligned: dmarc pass, negative score, accept with X-Spam headers', async () => {
    const body = await sign(message(), [sender, list]);
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), body, deps());
    assert.equal(reply.auth?.dmarc, 'pass');
    assert.deepEqual(
      reply.auth?.dkim.map((d) => [d.domain, d.result]),
      [
        ['sender.test', 'pass'],
        ['list.test', 'pass'],
      ],
    );
    assert.equal(reply.verdict.action, 'accept');
    assert.equal(reply.verdict.score, -2, 'spf pass -0.5, dkim pass -0.5, dmarc pass -1');
    const status = reply.prepend.find((h) => h.name === 'X-Spam-Status');
    assert.match(status?.value ?? '', /^No, score=-?[\d.]+ required=4/);
    assert.ok(reply.prepend.some((h) => h.name === 'X-Spam-Score'));
  });

  test('a valid signature of another domain does not align: dmarc fail, p=reject weighs in', async () => {
    const body = await sign(message(), [list]);
    const reply = await computeVerdict(envelope(body, FOREIGN_IP, { mailFrom: 'x@list.test' }), body, deps());
    assert.equal(reply.auth?.dkim[0]?.result, 'pass');
    assert.equal(reply.auth?.dkim[0]?.aligned, false);
    assert.equal(reply.auth?.dmarc, 'fail');
    for (const n of ['AUTH_DMARC_FAIL', 'AUTH_DMARC_POLICY_REJECT']) assert.ok(names(reply).includes(n), n);
    // 3 (fail) + 4 (p=reject) - 0.5 (dkim pass) + spf fail 3 = 9.5: greylist-worthy, not reject.
    assert.equal(reply.verdict.score, 9.5);
    assert.equal(reply.verdict.action, 'tag', 'greylisting is off: tagged, not rejected on p=reject alone');
    assert.match(reply.prepend.find((h) => h.name === 'X-Spam-Status')!.value, /^Yes, score=9\.5 /);
  });

  test('tree walk: a subdomain author aligns with the Organizational Domain found in DNS', async () => {
    const body = await sign(message({ from: 'a@mail.walk.test' }), [walk]);
    const before = dns.queries.length;
    const reply = await computeVerdict(
      envelope(body, FOREIGN_IP, { mailFrom: 'a@other.invalid' }),
      body,
      deps(),
    );
    assert.equal(reply.auth?.dmarc, 'pass', 'd=walk.test aligns (relaxed) with mail.walk.test');
    const asked = dns.queries.slice(before).map((q) => q.name);
    assert.ok(asked.includes('_dmarc.mail.walk.test') && asked.includes('_dmarc.walk.test'), asked.join(' '));
  });

  test('np=: an author domain that does not exist gets the np policy (RFC 9989 §4.7)', async () => {
    const body = message({ from: 'a@nope.walk.test' });
    const reply = await computeVerdict(
      envelope(body, FOREIGN_IP, { mailFrom: 'a@nope.walk.test' }),
      body,
      deps(),
    );
    assert.equal(reply.auth?.dmarc, 'fail');
    assert.equal(reply.auth?.dmarcDetail?.policy, 'quarantine');
    assert.ok(names(reply).includes('AUTH_DMARC_POLICY_QUARANTINE'));
  });

  test('an indirect flow: a list breaks DKIM but seals ARC; DMARC fails, the ARC pass offsets p=reject', async () => {
    const original = await sign(message(), [sender]);
    const modified = Buffer.from(
      original.toString('latin1').replace('Subject: filter test', 'Subject: [list] filter test'),
      'latin1',
    );
    const seal = await sealMessage(modified, {
      signingDomain: list.domain,
      selector: list.selector,
      privateKey: list.privateKey,
      cv: 'none',
      authResults: 'list.test; dkim=pass header.d=sender.test; spf=pass smtp.mailfrom=sender.test',
    });
    const body = Buffer.concat([seal, modified]);
    const reply = await computeVerdict(
      envelope(body, FOREIGN_IP, { mailFrom: 'bounces@list.test' }),
      body,
      deps(),
    );
    assert.equal(reply.auth?.arc, 'pass');
    assert.equal(reply.auth?.dmarc, 'fail');
    const arcHit = reply.verdict.rules.find((r) => r.name === 'AUTH_ARC_PASS_DMARC_FAIL');
    assert.equal(arcHit?.score, -4);
    assert.ok(names(reply).includes('AUTH_DMARC_POLICY_REJECT'));
    assert.notEqual(reply.verdict.action, 'reject', `score ${reply.verdict.score}`);
  });

  test('DKIM l= shorter than the body earns no DMARC credit', async () => {
    const base = message();
    const signedPart = await sign(base, [sender], { maxBodyLength: 'Hello Bob.\r\n'.length });
    const body = Buffer.concat([
      signedPart,
      Buffer.from('Appended by an attacker: click http://evil.test/\r\n'),
    ]);
    const auth = await authenticateMessage(body, {
      ip: FOREIGN_IP,
      helo: 'x',
      sender: 'x@list.test',
      authservId: AUTHSERV,
      resolver: deps().resolver,
    });
    assert.equal(auth.summary.dkim[0]?.result, 'pass', 'the signed part verifies');
    assert.equal(auth.summary.dmarc, 'fail');
    assert.ok(auth.rules.some((r) => r.name === 'AUTH_DKIM_PARTIAL_BODY'));
    assert.match(auth.header.value, /dmarc=fail reason="DKIM l= signature/);
  });

  test('several From addresses: DMARC fail and FROM_UNEVALUABLE, never none', async () => {
    const body = message({ from: 'a@sender.test, b@list.test' });
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), body, deps());
    assert.equal(reply.auth?.dmarc, 'fail');
    for (const n of ['AUTH_DMARC_FAIL', 'AUTH_DMARC_FROM_UNEVALUABLE'])
      assert.ok(names(reply).includes(n), n);
  });
});

describe('anti-spoofing of our domains', () => {
  test('From: our domain from a foreign IP without DMARC pass is rejected', async () => {
    const body = message({ from: 'CEO <ceo@example.org>' });
    const reply = await computeVerdict(
      envelope(body, FOREIGN_IP, { mailFrom: 'x@sender.test' }),
      body,
      deps(),
    );
    assert.equal(reply.verdict.action, 'reject');
    assert.match(reply.verdict.reason ?? '', /ours but the message is not authenticated/);
    assert.ok(names(reply).includes('FROM_OURS_UNAUTHENTICATED'));
  });

  test('a subdomain of ours counts; mode "score" adds the weight instead of rejecting', async () => {
    const body = message({ from: 'ceo@mail.example.net' });
    const reply = await computeVerdict(
      envelope(body, FOREIGN_IP, { mailFrom: 'x@sender.test' }),
      body,
      deps(policy({ antiSpoofing: 'score' })),
    );
    const hit = reply.verdict.rules.find((r) => r.name === 'FROM_OURS_UNAUTHENTICATED');
    assert.equal(hit?.score, 20);
    assert.equal(reply.verdict.action, 'reject', 'score 20 is over the reject threshold 15');
    assert.match(reply.verdict.reason ?? '', /spam/);
  });

  test('the address counts, not the display name', () => {
    const from = (v: string) => authorDomains(headerFields(Buffer.from(`From: ${v}\r\n\r\n`)));
    assert.deepEqual(from('"alice@example.org via List" <list@lists.test>'), ['lists.test']);
    assert.deepEqual(from('Bob (ceo@example.org) <bob@EXAMPLE.org.>'), ['example.org']);
    assert.deepEqual(from('a@one.test, "x, y" <b@two.test>'), ['one.test', 'two.test']);
  });

  test('our own submission and relay doors are exempt', async () => {
    const body = message({ from: 'ceo@example.org' });
    for (const source of ['submission', 'relay'] as const) {
      const reply = await computeVerdict(
        envelope(body, FOREIGN_IP, { source, mailFrom: 'ceo@sender.test' }),
        body,
        deps(),
      );
      assert.ok(!names(reply).includes('FROM_OURS_UNAUTHENTICATED'), source);
      assert.equal(reply.auth?.spf, 'fail', 'the results are still reported');
      assert.ok(
        reply.verdict.rules.filter((r) => r.name.startsWith('AUTH_')).every((r) => r.score === 0),
        'but weigh nothing for an authenticated door',
      );
      assert.equal(reply.verdict.action, 'accept', source);
    }
  });
});

describe('forged Authentication-Results (RFC 8601 §5)', () => {
  test('fields claiming our authserv-id are listed for removal; others stay; the egress drops them', async () => {
    const msg = message({
      headers: [
        'Authentication-Results: other.example; spf=pass smtp.mailfrom=a@sender.test',
        'Authentication-Results: MX.Example.Org (forged); dkim=pass header.d=example.org',
        'ARC-Authentication-Results: mx.example.org; dmarc=pass',
        'X-Spam-Status: No, score=-100',
      ],
    });
    const reply = await computeVerdict(envelope(msg, '127.0.0.1'), msg, deps());
    assert.deepEqual(
      reply.removeHeaders?.map((r) => [r.name, r.index]),
      [
        ['Authentication-Results', 1],
        ['ARC-Authentication-Results', 0],
        ['X-Spam-Status', 0],
      ],
    );
    const out = Buffer.from(withoutHeaderFields(msg, reply.removeHeaders!)).toString('latin1');
    assert.match(out, /^Authentication-Results: other\.example;/m);
    assert.doesNotMatch(out, /forged|ARC-Authentication-Results|score=-100/);
    assert.ok(out.endsWith('\r\n\r\nHello Bob.\r\n'), 'the body after the header block is unchanged');
  });
});

describe('header and MIME sanity', () => {
  test('missing Date and Message-ID, NUL, a long line and a multipart without its boundary are hits', async () => {
    const raw = Buffer.from(
      [
        'From: a@sender.test',
        'Subject: broken',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        `text\0 ${'x'.repeat(1200)}`,
        '--b2',
        '',
      ].join('\r\n'),
    );
    const reply = await computeVerdict(envelope(raw, '127.0.0.1'), raw, deps());
    for (const n of [
      'HDR_MISSING_DATE',
      'HDR_MISSING_MESSAGE_ID',
      'HDR_NUL',
      'HDR_LINE_TOO_LONG',
      'MIME_MALFORMED',
    ]) {
      assert.ok(names(reply).includes(n), n);
    }
    assert.equal(headerFields(raw).length, 3);
  });

  test('a well-formed message hits none of them', async () => {
    const body = await sign(message(), [sender]);
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), body, deps());
    assert.deepEqual(
      names(reply).filter((n) => n.startsWith('HDR_') || n.startsWith('MIME_')),
      [],
    );
  });
});

describe('DNS lists (RFC 5782)', () => {
  const opts = {
    ipZones: [{ zone: 'bl.test', weight: 5 }],
    uriZones: [{ zone: 'uribl.test', weight: 4 }],
    timeoutMs: 1000,
    cacheMs: 60_000,
    maxUris: 10,
  };

  test('a listed client IP and a listed link host score their zone weights; answers are cached', async () => {
    const cache = new DnsListCache(60_000);
    const body = message({ body: 'see http://bad.test/offer and https://good.test/\r\n' });
    const p = policy({ dnsLists: { options: opts, cache } });
    const reply = await computeVerdict(envelope(body, FOREIGN_IP), body, deps(p));
    const hits = reply.verdict.rules.filter((r) => r.name.endsWith('BL_LISTED'));
    assert.deepEqual(
      hits.map((h) => [h.name, h.score]),
      [
        ['DNSBL_LISTED', 5],
        ['URIBL_LISTED', 4],
      ],
    );
    const asked = dns.queries.filter((q) => q.name === '9.2.0.192.bl.test').length;
    await computeVerdict(envelope(body, FOREIGN_IP), body, deps(p));
    assert.equal(
      dns.queries.filter((q) => q.name === '9.2.0.192.bl.test').length,
      asked,
      'second answer from the cache',
    );
  });

  test('a list that does not answer is skipped within the timeout', async () => {
    const slow = createDnsResolver({ servers: [blackholeAddress], timeoutSeconds: 5 });
    const started = Date.now();
    const hits = await dnsListHits(
      FOREIGN_IP,
      message(),
      { ...opts, timeoutMs: 300 },
      slow,
      new DnsListCache(1000),
      {},
    );
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    assert.deepEqual(
      hits.map((h) => h.name),
      ['DNSBL_SKIPPED'],
    );
  });
});

describe('SPF (RFC 7208)', () => {
  const spf = async (ip: string, mailFrom: string, helo = 'client.sender.test') =>
    (
      await authenticateMessage(message(), {
        ip,
        helo,
        sender: mailFrom,
        authservId: AUTHSERV,
        resolver: deps().resolver,
      })
    ).summary.spf;

  const cases: [string, string, string, string][] = [
    ['§2.6.3 pass: ip4 mechanism matches', '127.0.0.1', 'a@sender.test', 'pass'],
    ['§2.6.4 fail: -all', FOREIGN_IP, 'a@sender.test', 'fail'],
    ['§2.6.5 softfail: ~all', FOREIGN_IP, 'a@soft.test', 'softfail'],
    ['§2.6.2 neutral: ?all', FOREIGN_IP, 'a@neutral.test', 'neutral'],
    ['§2.6.1 none: no SPF record', FOREIGN_IP, 'a@nospf.test', 'none'],
    ['§5.2 include: matches inside the included record', '127.0.0.1', 'a@inc.test', 'pass'],
    ['§6.1 redirect= uses the target record', '127.0.0.1', 'a@redir.test', 'pass'],
    ['§2.6.7 permerror: syntax error', FOREIGN_IP, 'a@broken.test', 'permerror'],
    ['§4.5 permerror: two SPF records', FOREIGN_IP, 'a@two.test', 'permerror'],
    ['§4.6.4 permerror: more than two void lookups', FOREIGN_IP, 'a@void.test', 'permerror'],
    ['§4.6.4 permerror: more than 10 DNS lookups', '127.0.0.1', 'a@l0.loop.test', 'permerror'],
  ];
  for (const [what, ip, from, want] of cases) {
    test(what, async () => assert.equal(await spf(ip, from), want));
  }

  test('§2.4 null reverse-path: SPF checks postmaster@HELO', async () => {
    assert.equal(await spf('127.0.0.1', '', 'helo.test'), 'pass');
    assert.equal(await spf(FOREIGN_IP, '', 'helo.test'), 'fail');
  });
});

describe('DNS timeouts', () => {
  test('a DNS server that never answers gives temperror and tempfail (451), within the time limit', async () => {
    const body = await sign(message(), [sender]);
    const started = Date.now();
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), body, {
      authservId: AUTHSERV,
      resolver: createDnsResolver({ servers: [blackholeAddress], timeoutSeconds: 1 }),
      policy: policy(),
    });
    assert.equal(reply.auth?.spf, 'temperror');
    assert.notEqual(reply.auth?.dmarc, 'pass');
    assert.notEqual(reply.auth?.dmarc, 'fail');
    assert.equal(reply.verdict.action, 'tempfail');
    assert.match(reply.verdict.reason ?? '', /temporarily/);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  });

  test('a spoofed From of ours during a DNS outage is deferred, not rejected on a guess', async () => {
    const body = message({ from: 'ceo@example.org' });
    const reply = await computeVerdict(envelope(body, FOREIGN_IP), body, {
      authservId: AUTHSERV,
      resolver: createDnsResolver({ servers: [blackholeAddress], timeoutSeconds: 1 }),
      policy: policy(),
    });
    assert.equal(reply.verdict.action, 'tempfail');
  });
});
