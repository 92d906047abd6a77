/**
 * The From-rewrite decision (from-rewrite.ts): each condition that must hold,
 * and the header fields it produces (safe display name, Reply-To kept,
 * exactly one From left in the assembled message).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { splitMessage } from '@sluice/dkim';
import { type Envelope, newQueueId, parseEnvelope, partIdOf, sha256Hex } from '@sluice/proto';
import { assembleMessage } from '@sluice/smtp';
import { decodeWords, displayPhrase, type FromRewriteContext, planFromRewrite } from './from-rewrite.ts';

const bodyText = 'From: "Bob Sender" <bob@sender.test>\r\nTo: info@example.org\r\nSubject: x\r\n\r\nhi\r\n';
const headersOf = (text: string) => splitMessage(Buffer.from(text)).headers;

function part(over: Record<string, unknown> = {}): Envelope {
  const id = newQueueId();
  const body = Buffer.from(bodyText);
  return parseEnvelope({
    v: 1,
    id,
    partId: partIdOf(id, 'mx:forward.test', ['alice@forward.test']),
    receivedAt: '2026-01-01T00:00:00.000Z',
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'bob@sender.test' },
    recipients: [
      { address: 'alice@forward.test', original: 'alice@example.org', forwardOwner: 'alice@example.org' },
    ],
    route: { kind: 'mx', domain: 'forward.test' },
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    auth: {
      spf: 'pass',
      dkim: [],
      dmarc: 'fail',
      arc: 'none',
      dmarcDetail: { domain: 'sender.test', result: 'fail', policy: 'reject', disposition: 'reject' },
    },
    ...over,
  });
}

const ctx = (over: Partial<FromRewriteContext['config']> = {}): FromRewriteContext => ({
  config: { enabled: true, forwards: ['alice@example.org'], displayName: '{name} via {domain}', ...over },
  ourDomains: new Set(['example.org', 'example.com']),
  primaryDomain: 'example.org',
});

describe('planFromRewrite: when', () => {
  test('rewrites an opted-in forward of p=reject mail without an aligned DKIM pass', () => {
    const plan = planFromRewrite(part(), headersOf(bodyText), ctx());
    assert.equal(plan.rewrite, true);
  });
  test('p=quarantine also qualifies; p=none and no recorded policy do not', () => {
    const withPolicy = (policy?: string) =>
      part({
        auth: {
          spf: 'pass',
          dkim: [],
          dmarc: 'fail',
          arc: 'none',
          dmarcDetail: { domain: 'sender.test', result: 'fail', ...(policy ? { policy } : {}) },
        },
      });
    assert.equal(planFromRewrite(withPolicy('quarantine'), headersOf(bodyText), ctx()).rewrite, true);
    assert.deepEqual(planFromRewrite(withPolicy('none'), headersOf(bodyText), ctx()), {
      rewrite: false,
      skip: 'no-strict-policy',
    });
    assert.deepEqual(planFromRewrite(withPolicy(), headersOf(bodyText), ctx()), {
      rewrite: false,
      skip: 'no-strict-policy',
    });
  });
  test('off by default, internal routes, non-forwards and owners not opted in are left alone', () => {
    const skip = (env: Envelope, c: FromRewriteContext) => {
      const p = planFromRewrite(env, headersOf(bodyText), c);
      return p.rewrite ? 'rewrite' : p.skip;
    };
    assert.equal(skip(part(), ctx({ enabled: false })), 'off');
    assert.equal(skip(part({ route: { kind: 'mx', domain: 'example.com' } }), ctx()), 'not-external');
    assert.equal(
      skip(part({ recipients: [{ address: 'alice@forward.test', original: 'alice@forward.test' }] }), ctx()),
      'not-forward',
    );
    assert.equal(skip(part(), ctx({ forwards: ['carol@example.org'] })), 'not-opted-in');
    assert.equal(skip(part(), ctx({ forwards: ['*'] })), 'rewrite');
    const twoOwners = part({
      recipients: [
        { address: 'alice@forward.test', original: 'alice@example.org', forwardOwner: 'alice@example.org' },
        { address: 'carol@forward.test', original: 'carol@example.org', forwardOwner: 'carol@example.org' },
      ],
    });
    assert.equal(skip(twoOwners, ctx({ forwards: ['*'] })), 'several-forward-owners');
    assert.equal(skip(twoOwners, ctx({ forwards: ['*'], address: 'noreply@example.org' })), 'rewrite');
    assert.equal(
      skip(twoOwners, ctx({ forwards: ['alice@example.org'], address: 'noreply@example.org' })),
      'not-opted-in',
    );
  });
  test('an aligned passing DKIM signature (recorded or by domain) means no rewrite; a failing or foreign one does not', () => {
    const withDkim = (dkim: unknown[]) =>
      planFromRewrite(part({ auth: { ...part().auth!, dkim } }), headersOf(bodyText), ctx());
    assert.deepEqual(withDkim([{ domain: 'sender.test', result: 'pass', aligned: true }]), {
      rewrite: false,
      skip: 'aligned-dkim-pass',
    });
    assert.equal(withDkim([{ domain: 'mail.sender.test', result: 'pass' }]).rewrite, false);
    assert.equal(withDkim([{ domain: 'sender.test', result: 'fail', aligned: true }]).rewrite, true);
    assert.equal(withDkim([{ domain: 'esp.test', result: 'pass', aligned: false }]).rewrite, true);
  });
  test('several From fields, our own author domain: no rewrite', () => {
    const two = `From: a@sender.test\r\n${bodyText}`;
    assert.deepEqual(planFromRewrite(part(), headersOf(two), ctx()), {
      rewrite: false,
      skip: 'no-author-domain',
    });
    const ours = bodyText.replace('bob@sender.test', 'bob@example.com');
    assert.deepEqual(planFromRewrite(part(), headersOf(ours), ctx()), { rewrite: false, skip: 'our-author' });
  });
});

describe('planFromRewrite: what', () => {
  test('From of ours with the display name, Reply-To and X-Original-From the original; one From leaves', () => {
    const env = part();
    const plan = planFromRewrite(env, headersOf(bodyText), ctx());
    assert.ok(plan.rewrite);
    assert.deepEqual(
      plan.prepend.map((h) => `${h.name}: ${h.value}`),
      [
        'From: "Bob Sender via example.org" <alice@example.org>',
        'Reply-To: "Bob Sender" <bob@sender.test>',
        'X-Original-From: "Bob Sender" <bob@sender.test>',
      ],
    );
    const out = assembleMessage(plan.prepend, Buffer.from(bodyText), plan.removeHeaders).toString();
    assert.equal(out.match(/^From:/gim)?.length, 1);
    assert.match(out, /^From: "Bob Sender via example.org" <alice@example.org>\r\n/);
    assert.doesNotMatch(out, /^From: "Bob Sender" /m);
  });
  test('an existing Reply-To is kept, not replaced; a fixed address is used when configured', () => {
    const text = bodyText.replace('Subject: x', 'Reply-To: list@sender.test\r\nSubject: x');
    const plan = planFromRewrite(
      part(),
      headersOf(text),
      ctx({ address: 'noreply@example.org', displayName: '{name}' }),
    );
    assert.ok(plan.rewrite);
    assert.deepEqual(
      plan.prepend.map((h) => h.name),
      ['From', 'X-Original-From'],
    );
    assert.equal(plan.prepend[0]!.value, '"Bob Sender" <noreply@example.org>');
  });
  test('a bare address gives the address as name; quotes and backslashes are escaped; no CR/LF gets through', () => {
    const bare = bodyText.replace('"Bob Sender" <bob@sender.test>', 'bob@sender.test');
    const plan = planFromRewrite(part(), headersOf(bare), ctx());
    assert.ok(plan.rewrite);
    assert.equal(plan.prepend[0]!.value, '"bob@sender.test via example.org" <alice@example.org>');
    assert.equal(displayPhrase('a "b" \\ c'), '"a \\"b\\" \\\\ c"');
    assert.equal(displayPhrase('evil\r\nBcc: x@y'), '"evil Bcc: x@y"');
  });
  test('non-ASCII names: RFC 2047 decoded from the original, encoded words in the new From', () => {
    assert.equal(decodeWords('=?utf-8?q?J=C3=BCrgen?= =?UTF-8?B?IE3DvGxsZXI=?='), 'Jürgen Müller');
    assert.equal(decodeWords('=?iso-8859-1?q?Ren=E9_X?='), 'René X');
    const text = bodyText.replace('"Bob Sender"', '=?utf-8?q?J=C3=BCrgen?=');
    const plan = planFromRewrite(part(), headersOf(text), ctx());
    assert.ok(plan.rewrite);
    const value = plan.prepend[0]!.value;
    assert.match(value, /^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=( |\r\n )?.* <alice@example.org>$/s);
    const phrase = value.slice(0, value.lastIndexOf(' <'));
    assert.equal(decodeWords(phrase.replace(/\r\n /g, ' ')), 'Jürgen via example.org');
    const long = displayPhrase('Ünïcödé '.repeat(20));
    for (const word of long.split('\r\n ')) assert.ok(word.length <= 75, word);
    assert.equal(decodeWords(long.replace(/\r\n /g, ' ')), 'Ünïcödé '.repeat(20).trim());
  });
});
