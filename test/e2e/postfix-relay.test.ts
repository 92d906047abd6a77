/**
 * Debian's Postfix as the sending MTA in front of our MX (issue 10): a real
 * Postfix instance (own config dir and queue, relayhost = our ingress,
 * STARTTLS required: smtp_tls_security_level = encrypt) takes mail over SMTP
 * and relays it into Sluice's ingress, which must take what a real MTA sends
 * the way a real MTA sends it: pipelined MAIL/RCPT/DATA (RFC 2920), several
 * recipients, an 8-bit body (RFC 6152), DSN parameters (RFC 3461), over
 * STARTTLS with the self-signed certificate generated at first start. Each
 * message must arrive at the sink intact, and Postfix's own log must say
 * status=sent for every recipient, with an empty queue behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Subscription } from '@nats-io/transport-node';
import { decodeEnvelope, type Envelope, subjects } from '@sluice/proto';
import {
  type PostfixInstance,
  postfixUsable,
  type SinkMessage,
  smtpConversation,
  startPostfixRelay,
  waitUntil,
} from '@sluice/test-harness';
import { type Pipeline, startPipeline } from './helpers.ts';

const skip = postfixUsable() ? false : 'Postfix (/usr/sbin/postfix, run as root) is not available';
const tlsDir = mkdtempSync(join(tmpdir(), 'sluice-postfix-tls-'));
let pipe: Pipeline;
let postfix: PostfixInstance;
let queued: Subscription;
/** Every envelope the ingress queued (a core subscriber on the resolve subject sees each publish). */
const envelopes: Envelope[] = [];

before(async () => {
  if (skip) return;
  pipe = await startPipeline(
    'postfix-relay',
    [{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }],
    (sink) => ({
      domains: { primary: 'example.org' },
      routing: {
        forwards: Object.fromEntries(
          ['alice', 'bob', 'carol'].map((u) => [`${u}@example.org`, [`${u}@example.net`]]),
        ),
      },
      transports: { 'example.net': { host: '127.0.0.1', port: sink.port } },
      ingress: { tls: { selfSigned: true, generatedDir: tlsDir } },
    }),
  );
  queued = pipe.rt.bus.nc.subscribe(subjects.resolve, {
    callback: (_err, m) => {
      envelopes.push(decodeEnvelope(m.data).envelope);
    },
  });
  await pipe.rt.bus.nc.flush();
  postfix = await startPostfixRelay({ relayPort: pipe.port, tls: 'encrypt' });
});

after(async () => {
  queued?.unsubscribe();
  await postfix?.stop();
  await pipe?.stop();
  rmSync(tlsDir, { recursive: true, force: true });
});

const tag = () => randomBytes(6).toString('hex');

/** Postfix's log lines about the relay of `id` (its queue id) to our MX. */
function relayLines(id: string): string[] {
  return postfix
    .maillog()
    .split('\n')
    .filter((l) => l.includes(` ${id}: `) && l.includes(`relay=127.0.0.1[127.0.0.1]:${pipe.port}`));
}

/** Submit to Postfix: EHLO, then MAIL, every RCPT and DATA in one write (PIPELINING), then the content. */
async function submit(o: { mail: string; rcpts: string[]; content: Buffer }): Promise<string> {
  const replies = await smtpConversation(postfix.smtpPort, [
    'EHLO client.sender.test',
    {
      raw: `${[`MAIL FROM:${o.mail}`, ...o.rcpts.map((r) => `RCPT TO:${r}`), 'DATA'].join('\r\n')}\r\n`,
      replies: o.rcpts.length + 2,
    },
    { raw: Buffer.concat([o.content, Buffer.from('.\r\n')]) },
    'QUIT',
  ]);
  assert.match(replies[1]!, /PIPELINING/);
  assert.match(replies.at(-3)!, /^354 /, replies.join(' | '));
  const queuedAs = /^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)/.exec(replies.at(-2)!);
  assert.ok(queuedAs, `Postfix did not queue it: ${replies.join(' | ')}`);
  return queuedAs[1]!;
}

/**
 * Wait until Postfix has logged the relay of `id` to our MX for `n` recipients, all status=sent;
 * the log lines and the envelopes our ingress queued for them (by the queue id in our 250 reply).
 */
async function relayedBy(id: string, n: number): Promise<{ lines: string[]; queuedHere: Envelope[] }> {
  await waitUntil(`Postfix relayed ${id} to the MX`, () => relayLines(id).length >= n, { timeoutMs: 30_000 });
  const lines = relayLines(id);
  const ours = new Set<string>();
  for (const l of lines) {
    const m = /status=sent \(250 2\.0\.0 Ok: queued as ([0-9A-Z]+)/.exec(l);
    assert.ok(m, l);
    ours.add(m[1]!);
  }
  const queuedHere = await waitUntil('our envelopes seen', () => {
    const found = envelopes.filter((e) => ours.has(e.id));
    return found.length === ours.size ? found : undefined;
  });
  return { lines, queuedHere };
}

function arrived(subject: string): SinkMessage[] {
  return pipe.sink.messages.filter((m) => m.raw.toString('latin1').includes(`Subject: ${subject}\r\n`));
}

function message(subject: string, to: string, body: Buffer, extraHeaders: string[] = []): Buffer {
  const head = [
    'From: Sender <s@sender.test>',
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${tag()}@sender.test>`,
    `Date: ${new Date().toUTCString()}`,
    ...extraHeaders,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head), body]);
}

describe('Postfix relaying into the MX', { skip }, () => {
  test('a pipelined message to three recipients: relayed over STARTTLS, each copy at the sink once, status=sent', async () => {
    const subject = `pipelined-${tag()}`;
    const rcpts = ['alice', 'bob', 'carol'].map((u) => `<${u}@example.org>`);
    const id = await submit({
      mail: '<s@sender.test>',
      rcpts,
      content: message(subject, 'alice@example.org', Buffer.from('three of us\r\n')),
    });
    const { lines, queuedHere } = await relayedBy(id, 3);
    for (const u of ['alice', 'bob', 'carol']) {
      assert.ok(
        lines.some((l) => l.includes(`to=<${u}@example.org>`)),
        `no status=sent for ${u}: ${lines.join('\n')}`,
      );
    }
    // Postfix's SMTP client used TLS to our MX (smtp_tls_security_level = encrypt would defer otherwise).
    assert.match(
      postfix.maillog(),
      new RegExp(
        `TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${pipe.port}: TLSv1\\.[23]`,
      ),
    );
    await waitUntil(
      'all three copies at the sink',
      () => arrived(subject).flatMap((m) => m.rcptTo).length >= 3,
      {
        timeoutMs: 30_000,
      },
    );
    const copies = arrived(subject);
    assert.deepEqual(copies.flatMap((m) => m.rcptTo).sort(), [
      'alice@example.net',
      'bob@example.net',
      'carol@example.net',
    ]);
    for (const m of copies) {
      const raw = m.raw.toString('latin1');
      // Our Received: from Postfix's EHLO name, with ESMTPS (RFC 3848) and the TLS version.
      assert.match(
        raw,
        /^Received: from relay\.sender\.test \(\[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.[23] with cipher [A-Z0-9_]+\)\r\n\tby mx\.example\.org \(Sluice\) with ESMTPS id /,
      );
      assert.match(raw, /\r\n\r\nthree of us\r\n$/);
    }
    // One transaction at our ingress (Postfix pipelined MAIL, three RCPTs and DATA) with all three recipients.
    assert.equal(queuedHere.length, 1);
    assert.equal(queuedHere[0]!.client.helo, 'relay.sender.test');
    assert.deepEqual(queuedHere[0]!.recipients.map((r) => r.address).sort(), [
      'alice@example.org',
      'bob@example.org',
      'carol@example.org',
    ]);
    await waitUntil('the Postfix queue is empty', () => postfix.queued().length === 0, { timeoutMs: 10_000 });
  });

  test('an 8BITMIME body passes through Postfix and the MX byte for byte', async () => {
    const subject = `eightbit-${tag()}`;
    const body = Buffer.from('Grüße aus Köln — naïve café, 東京\r\nzweite Zeile\r\n', 'utf8');
    const id = await submit({
      mail: '<s@sender.test> BODY=8BITMIME',
      rcpts: ['<alice@example.org>'],
      content: message(subject, 'alice@example.org', body, [
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
      ]),
    });
    const { queuedHere } = await relayedBy(id, 1);
    // Postfix passed BODY=8BITMIME on (our MX offers 8BITMIME) and we recorded it.
    assert.equal(queuedHere[0]!.mailFrom.body, '8BITMIME');
    const [copy] = await waitUntil(
      'the 8-bit message at the sink',
      () => {
        const got = arrived(subject);
        return got.length > 0 ? got : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.ok(copy);
    assert.ok(
      copy.raw.subarray(copy.raw.length - body.length).equals(body),
      'the 8-bit body arrived unchanged',
    );
  });

  test('DSN parameters (RET, ENVID, NOTIFY, ORCPT) given to Postfix reach our envelope', async () => {
    const subject = `dsn-${tag()}`;
    const envid = `env-${tag()}`;
    const id = await submit({
      mail: `<s@sender.test> RET=HDRS ENVID=${envid}`,
      rcpts: ['<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org'],
      content: message(subject, 'bob@example.org', Buffer.from('with DSN parameters\r\n')),
    });
    const { queuedHere } = await relayedBy(id, 1);
    const env = queuedHere[0]!;
    assert.equal(env.mailFrom.envid, envid);
    assert.equal(env.mailFrom.ret, 'HDRS');
    const bob = env.recipients.find((r) => r.address === 'bob@example.org');
    assert.deepEqual(bob?.notify, ['SUCCESS', 'FAILURE']);
    assert.equal(bob?.orcpt, 'rfc822;bob@example.org');
    await waitUntil('the DSN message at the sink', () => arrived(subject).length === 1, {
      timeoutMs: 30_000,
    });
  });
});
