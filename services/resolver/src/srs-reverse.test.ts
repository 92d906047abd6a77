/**
 * Bounces to our SRS addresses at both resolver doors: the RCPT-time lookup
 * (ok for the null sender with the original as target; unknown with the
 * reason for other senders, forged, expired, hash-only and SRS-domain
 * addresses that are not SRS) and the resolve stage (the part goes to the
 * original sender's route; a refusal becomes an "unknown" error with the
 * reason). SRS1 goes back to the first forwarder.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { type Envelope, newQueueId, parseEnvelope } from '@sluice/proto';
import { Srs } from '@sluice/srs';
import { lookupAddress } from './lookup.ts';
import { buildRoutingTable } from './routing-table.ts';
import { resolveRecipients } from './split.ts';
import { SrsBounceLimiter } from './srs-bounce-limit.ts';

const config = parseConfig(
  {
    domains: { primary: 'example.org' },
    srs: { secrets: ['new', 'old'] },
    transports: { 'example.org': { host: 'mbox', port: 24, lmtp: true } },
  },
  'test',
);
const table = buildRoutingTable(config);
const srs = new Srs({ domain: 'srs.example.org', secrets: ['old'] });
const DAY = 86_400_000;

describe('SRS reverse in the lookup', () => {
  test('a bounce (null sender) to an SRS0 address is ok, to the original sender', () => {
    const a = srs.forward('alice@sender.test').address;
    const r = lookupAddress(table, a, { mailFrom: '' });
    assert.equal(r.result, 'ok');
    assert.deepEqual(r.targets, ['alice@sender.test']);
    assert.match(r.trail[0]!, /SRS0 address: back to alice@sender\.test/);
    assert.equal(lookupAddress(table, a.toLowerCase(), { mailFrom: '' }).result, 'ok', 'case folded');
  });

  test('a quoted SRS address (a quoted original sender) reverses to the quoted original', () => {
    const made = srs.forward('john doe@sender.test').address;
    const quoted = `"${made.slice(0, made.lastIndexOf('@'))}"@srs.example.org`;
    assert.deepEqual(lookupAddress(table, quoted, { mailFrom: '' }).targets, ['"john doe"@sender.test']);
  });

  test('an SRS1 address goes back to the first forwarder', () => {
    const a = srs.forward('SRS0=abcd=AB=orig.test=u@first.test').address;
    assert.deepEqual(lookupAddress(table, a, { mailFrom: '' }).targets, [
      'SRS0=abcd=AB=orig.test=u@first.test',
    ]);
  });

  test('refused with the reason: another sender, forged, expired, hash-only, not SRS', () => {
    const a = srs.forward('alice@sender.test').address;
    const cases: Array<[string, string | undefined, RegExp]> = [
      [a, 'spam@elsewhere.test', /only bounces/],
      [a.replace(/^SRS0=./, 'SRS0=!'), '', /hash does not verify/],
      [srs.forward('alice@sender.test', new Date(Date.now() - 30 * DAY)).address, '', /expired/],
      [srs.forward(`${'x'.repeat(60)}@sender.test`).address, '', /hash-only/],
      ['postmaster@srs.example.org', '', /not an SRS address/],
    ];
    for (const [address, mailFrom, reason] of cases) {
      const r = lookupAddress(table, address, { mailFrom });
      assert.equal(r.result, 'unknown', address);
      assert.match(r.reason ?? '', reason, address);
    }
  });

  test('without SRS configured, the SRS domain is foreign', () => {
    const plain = buildRoutingTable(parseConfig({ domains: { primary: 'example.org' } }, 'test'));
    assert.equal(lookupAddress(plain, srs.forward('a@b.test').address, { mailFrom: '' }).result, 'foreign');
  });
});

describe('rate limit on bounces to SRS addresses (srs.bounceLimit)', () => {
  test('defaults to 100 per original-sender domain per minute', () => {
    assert.deepEqual(config.srs.bounceLimit, { perDomain: 100, windowSeconds: 60 });
  });

  test('over the limit for one sender domain: tempfail (451 at RCPT); other domains and the next window pass', () => {
    const limiter = new SrsBounceLimiter({ perDomain: 2, windowSeconds: 60 });
    const t0 = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 1000);
    const toAlice = srs.forward('alice@sender.test', t0).address;
    const toBob = srs.forward('bob@SENDER.test', t0).address;
    const toCarol = srs.forward('carol@other.test', t0).address;
    const bounce = (a: string, now = t0) =>
      lookupAddress(table, a, { mailFrom: '', now, srsBounceLimiter: limiter });
    assert.equal(bounce(toAlice).result, 'ok');
    assert.equal(bounce(toBob).result, 'ok');
    // The third bounce to sender.test in this window, whatever the local part or case.
    const over = bounce(toAlice);
    assert.equal(over.result, 'tempfail');
    assert.match(over.reason!, /too many bounces/);
    assert.match(over.trail.at(-1)!, /over srs\.bounceLimit for sender\.test/);
    assert.equal(bounce(toCarol).result, 'ok', 'another domain has its own count');
    // `sluice lookup` (no sender) and non-bounces are not counted and not limited.
    assert.equal(lookupAddress(table, toAlice, { now: t0, srsBounceLimiter: limiter }).result, 'ok');
    assert.equal(bounce(toAlice, new Date(t0.getTime() + 60_000)).result, 'ok', 'the next window');
  });

  test('perDomain 0 is no limit', () => {
    const limiter = new SrsBounceLimiter({ perDomain: 0, windowSeconds: 60 });
    for (let i = 0; i < 500; i++) assert.equal(limiter.take('sender.test', 1000), true);
    assert.equal(limiter.size, 0);
  });
});

describe('SRS reverse in the resolve stage', () => {
  const env = (mailFrom: string, to: string): Envelope =>
    parseEnvelope({
      v: 1,
      id: newQueueId(),
      receivedAt: new Date().toISOString(),
      source: 'mx',
      receivedBy: 'mx.example.org',
      client: { ip: '192.0.2.1', helo: 'c.test' },
      mailFrom: { address: mailFrom },
      recipients: [{ address: to, original: to }],
      body: { kind: 'inline', size: 0, sha256: '0'.repeat(64) },
    });

  test('a bounce is routed to the original sender', () => {
    const a = srs.forward('alice@sender.test').address;
    const [r] = resolveRecipients(table, env('', a));
    assert.deepEqual(
      r!.targets.map((t) => [t.address, t.via, t.route.kind]),
      [['alice@sender.test', [a], 'mx']],
    );
    // A reversed bounce is not a forward: nobody is told if it fails.
    assert.equal(r!.targets[0]!.forwardOwner, undefined);
  });

  test('a refusal after acceptance is an unknown error with the reason', () => {
    const a = srs.forward('alice@sender.test').address;
    const [r] = resolveRecipients(table, env('someone@else.test', a));
    assert.equal(r!.targets.length, 0);
    assert.equal(r!.expansion.errors[0]?.kind, 'unknown');
    assert.match(r!.expansion.errors[0]!.message, /only bounces/);
  });
});
