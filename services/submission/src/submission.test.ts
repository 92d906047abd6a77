/**
 * The submission service against real components: nats-server, slapd holding
 * users with mailPassword hashes (@sluice/credentials reads them), the real
 * resolver (sender ownership, then routing of what was submitted), and real
 * clients: swaks and nodemailer on 587 (STARTTLS) and 465 (implicit TLS),
 * raw sockets for what no polite client does, openssl-made certificates for
 * the mutual-TLS relay door. What was accepted is read back from the
 * rewrite stream, after the resolver routed it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { makeHash } from '@sluice/credentials/hash-fixtures';
import { consumers, type Envelope } from '@sluice/proto';
import { resolverService } from '@sluice/resolver';
import type { RunningService } from '@sluice/runtime';
import {
  collectStage,
  type NatsTestServer,
  type SlapdServer,
  startNats,
  startServiceContext,
  startSlapd,
  type TestServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { createTransport } from 'nodemailer';
import { submissionService } from './submission-definition.ts';
import {
  issueClientCert,
  makeCa,
  type TestCa,
  type TestClientCert,
} from './test-certificates.test-helper.ts';

const run = promisify(execFile);
const PASSWORDS: Record<string, string> = {
  alice: 'alice-secret-1',
  bob: 'bob-secret-2',
  erin: 'erin-secret-3',
  frank: 'frank-secret-4',
};

let nats: NatsTestServer;
let slapd: SlapdServer;
let config: SluiceConfig;
let a: TestServiceContext;
let b: TestServiceContext;
const running: RunningService[] = [];
let resolver: RunningService;
let collected: RunningService & { envelopes: Envelope[] };
let ports: { starttls: number; implicit: number; relay: number; implicitB: number; autoconfig: number };
let ca: TestCa;
let otherCa: TestCa;
const certs: Record<string, TestClientCert> = {};

function portsOf(s: RunningService): { starttls: number[]; implicit: number[]; relay: number[] } {
  const info = s.info?.() as
    | { ports?: { starttls: number[]; implicit: number[]; relay: number[] } }
    | undefined;
  assert.ok(info?.ports, 'the submission service reports its ports');
  return info.ports;
}

before(async () => {
  nats = await startNats();
  slapd = await startSlapd(
    await Promise.all(
      Object.entries(PASSWORDS).map(async ([uid, pw]) => ({
        uid,
        forwards: [`${uid}@remote.example`],
        mailPassword: [await makeHash(uid === 'bob' ? 'CRYPT-6' : 'SSHA', pw)],
      })),
    ),
  );
  ca = makeCa('Sluice Test Relay CA');
  otherCa = makeCa('Somebody Else CA');
  certs.crm = issueClientCert(ca, 'crm.internal');
  certs.tickets = issueClientCert(ca, 'tickets.internal');
  certs.stranger = issueClientCert(ca, 'stranger.internal');
  certs.expired = issueClientCert(ca, 'crm.internal', { expired: true });
  certs.foreign = issueClientCert(otherCa, 'crm.internal');
  const tlsDir = mkdtempSync(join(tmpdir(), 'sluice-sub-tls-'));
  const loopback = [{ host: '127.0.0.1', port: 0 }];
  config = parseConfig(
    {
      hostname: 'submit.sluice.test',
      domains: { primary: 'sluice.test' },
      nats: { servers: [nats.url] },
      routing: {
        aliases: { 'team@sluice.test': ['alice@sluice.test'] },
        ldap: { urls: [slapd.url], baseDn: slapd.baseDn, filter: '(objectClass=account)', timeout: 2 },
      },
      submission: {
        listen: { starttls: loopback, implicitTls: loopback },
        tls: { selfSigned: true, generatedDir: tlsDir },
        auth: {
          throttle: {
            maxFailuresPerIp: 1000,
            maxFailuresPerUserNetwork: 3,
            maxFailuresPerUser: 1000,
            window: 600,
            ban: 120,
            maxBan: 3600,
          },
        },
        senderGrants: { 'info@sluice.test': ['bob'] },
        rateLimits: { perMinute: 50, perHour: 1000, perDay: 5000 },
        filter: false,
        autoconfig: { listen: { host: '127.0.0.1', port: 0 }, displayName: 'Sluice Test Mail' },
        relay: {
          listen: loopback,
          caFile: ca.certFile,
          rateLimits: { default: { perMinute: 5, perHour: 100, perDay: 1000 } },
          clients: [
            {
              name: 'crm',
              subjectCn: 'crm.internal',
              senderDomains: ['news.sluice.test'],
              rateClass: 'bulk',
            },
            {
              name: 'tickets',
              fingerprintSha256: certs.tickets.fingerprintSha256,
              senderDomains: ['sluice.test'],
            },
          ],
        },
      },
    },
    'submission-test',
  );
  a = await startServiceContext(
    config,
    'submission-a',
    process.env['SUB_DEBUG'] ? { logLevel: 'debug', logDestination: process.stderr } : {},
  );
  b = await startServiceContext(config, 'submission-b');
  resolver = await resolverService.start(a.ctx);
  running.push(resolver);
  collected = collectStage(a.bus, consumers.rewriter);
  const subA = await submissionService.start(a.ctx);
  const subB = await submissionService.start(b.ctx);
  running.push(subA, subB);
  const pa = portsOf(subA);
  ports = {
    starttls: pa.starttls[0]!,
    implicit: pa.implicit[0]!,
    relay: pa.relay[0]!,
    implicitB: portsOf(subB).implicit[0]!,
    autoconfig: (subA.info?.() as { autoconfigPort?: number } | undefined)?.autoconfigPort ?? 0,
  };
});

after(async () => {
  for (const s of running.reverse()) await s.stop();
  await collected?.stop();
  await a?.close();
  await b?.close();
  await slapd?.close();
  await nats?.stop();
});

/** A message whose From header is `from`; the Subject makes it findable in the stream. */
function message(from: string, subject: string): string {
  return [
    `From: Someone <${from}>`,
    'To: friend@remote.example',
    `Subject: ${subject}`,
    `Message-ID: <${subject.replace(/\W/g, '')}@laptop.test>`,
    '',
    `body of ${subject}`,
    '',
  ].join('\r\n');
}

interface SendOpts {
  port?: number;
  secure?: boolean;
  user?: string;
  pass?: string;
  from: string;
  headerFrom?: string;
  to?: string[];
  subject: string;
}

/** nodemailer, as a mail client would use it (587 with STARTTLS required, or 465). */
async function send(o: SendOpts) {
  const secure = o.secure ?? true;
  const user = o.user ?? 'alice';
  const transport = createTransport({
    host: '127.0.0.1',
    port: o.port ?? (secure ? ports.implicit : ports.starttls),
    secure,
    requireTLS: !secure,
    name: 'laptop.home.example',
    tls: { rejectUnauthorized: false },
    auth: { user, pass: o.pass ?? PASSWORDS[user]! },
  });
  try {
    return await transport.sendMail({
      envelope: { from: o.from, to: o.to ?? ['friend@remote.example'] },
      raw: message(o.headerFrom ?? o.from, o.subject),
    });
  } finally {
    transport.close();
  }
}

async function refusal(p: Promise<unknown>): Promise<{ responseCode?: number; response?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { responseCode?: number; response?: string };
  }
  assert.fail('expected the server to refuse');
}

/** The envelope in the rewrite stream whose queue id the 250 reply named. */
function envelopeOf(reply: string): Promise<Envelope> {
  const id = /queued as ([0-9A-Z]+)/.exec(reply)?.[1];
  assert.ok(id, `no queue id in ${reply}`);
  return waitUntil(`envelope ${id} routed`, () => collected.envelopes.find((e) => e.id === id));
}

/** A raw SMTP conversation: write each line, collect each reply (multi-line replies joined). */
async function converse(socket: Socket, lines: string[]): Promise<string[]> {
  let buffer = '';
  const replies: string[] = [];
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const m = /(?:^|\n)(\d{3}) [^\n]*\n/.exec(buffer);
        if (!m) return false;
        const end = m.index + m[0].length;
        const reply = buffer.slice(0, end).trim();
        buffer = buffer.slice(end);
        resolve(reply);
        return true;
      };
      if (check()) return;
      const onData = (d: Buffer) => {
        buffer += d.toString('latin1');
        if (check()) socket.off('data', onData);
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
  replies.push(await next());
  for (const l of lines) {
    socket.write(`${l}\r\n`);
    replies.push(await next());
  }
  socket.destroy();
  return replies;
}

describe('submission on 587 and 465', () => {
  test('nodemailer on 465 (implicit TLS, AUTH PLAIN): queued with source submission and the user', async () => {
    const info = await send({ from: 'alice@sluice.test', subject: 'nodemailer 465' });
    const env = await envelopeOf(info.response);
    assert.equal(env.source, 'submission');
    assert.deepEqual(env.client.auth, { user: 'alice', method: 'PLAIN' });
    assert.deepEqual(
      env.recipients.map((r) => r.address),
      ['friend@remote.example'],
    );
  });

  test('nodemailer on 587 (STARTTLS required) is served the same way', async () => {
    const info = await send({ secure: false, from: 'alice@sluice.test', subject: 'nodemailer 587' });
    const env = await envelopeOf(info.response);
    assert.equal(env.source, 'submission');
    assert.equal(env.client.auth?.user, 'alice');
  });

  test('swaks on 587 (STARTTLS, AUTH LOGIN) and on 465 (--tls-on-connect, AUTH PLAIN)', async () => {
    for (const [port, tls, auth] of [
      [ports.starttls, '--tls', 'LOGIN'],
      [ports.implicit, '--tls-on-connect', 'PLAIN'],
    ] as const) {
      const { stdout } = await run('swaks', [
        ...['--server', `127.0.0.1:${port}`, tls, '--auth', auth],
        ...['--auth-user', 'bob', '--auth-password', PASSWORDS.bob!],
        ...['--from', 'bob@sluice.test', '--to', 'friend@remote.example', '--ehlo', 'laptop.test'],
        ...['--header', `Subject: swaks ${auth}`],
      ]);
      const reply = /<~ *(250 [^\n]*queued as [0-9A-Z]+)/.exec(stdout)?.[1];
      assert.ok(reply, stdout);
      const env = await envelopeOf(reply);
      assert.deepEqual(env.client.auth, { user: 'bob', method: auth });
    }
  });

  test('the Received header names neither the client IP, its HELO nor its TLS details', async () => {
    const info = await send({ secure: false, from: 'alice@sluice.test', subject: 'privacy' });
    const env = await envelopeOf(info.response);
    const received = env.prepend.find((h) => h.name === 'Received');
    assert.ok(received);
    assert.doesNotMatch(received.value, /127\.0\.0\.1|laptop|home\.example|cipher|TLSv/);
    assert.match(received.value, /^by submit\.sluice\.test \(Sluice\) with ESMTPSA id /);
    assert.ok(!env.prepend.some((h) => /originating/i.test(h.name)));
  });

  test('AUTH before STARTTLS on 587: not offered, and 530 5.7.0 when tried', async () => {
    const socket = netConnect(ports.starttls, '127.0.0.1');
    const replies = await converse(socket, ['EHLO laptop.test', 'AUTH PLAIN AGFsaWNlAGFsaWNlLXNlY3JldC0x']);
    assert.match(replies[0]!, /^220 /);
    assert.doesNotMatch(replies[1]!, /AUTH/);
    assert.match(replies[1]!, /STARTTLS/);
    assert.match(replies[2]!, /^530 5\.7\.0 Must issue a STARTTLS command first/);
    // Refused before the authenticator is asked, and still counted as an auth outcome.
    assert.match(
      await a.ctx.metrics.registry.metrics(),
      /sluice_submission_auth_total\{outcome="tls-required"\} [1-9]/,
    );
  });

  test('MAIL before AUTH under TLS: 530 5.7.0', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: ports.implicit, rejectUnauthorized: false });
    const replies = await converse(socket, ['EHLO laptop.test', 'MAIL FROM:<alice@sluice.test>']);
    assert.match(replies[1]!, /AUTH PLAIN LOGIN/);
    assert.match(replies[2]!, /^530 5\.7\.0 /);
  });

  test('a wrong password: 535 5.7.8, and the same answer for a user that does not exist', async () => {
    const wrong = await refusal(send({ from: 'alice@sluice.test', pass: 'nope', subject: 'wrong pw' }));
    assert.equal(wrong.responseCode, 535);
    assert.match(wrong.response ?? '', /^535 5\.7\.8 /);
    const nobody = await refusal(
      send({ user: 'nobody', pass: 'x', from: 'nobody@sluice.test', subject: 'n' }),
    );
    assert.equal(nobody.response, wrong.response);
  });
});

describe('sender rules', () => {
  test('MAIL FROM an address that is not theirs: 553 5.7.1 naming it', async () => {
    for (const from of ['bob@sluice.test', 'alice@elsewhere.example']) {
      const err = await refusal(send({ from, subject: `not owned ${from}` }));
      assert.equal(err.responseCode, 553, from);
      assert.match(err.response ?? '', new RegExp(`^553 5\\.7\\.1 .*<${from}> is not one of yours`));
    }
  });

  test('a From header that is not theirs (envelope sender fine): 550 5.7.1 after DATA', async () => {
    const err = await refusal(
      send({ from: 'alice@sluice.test', headerFrom: 'ceo@sluice.test', subject: 'hdr' }),
    );
    assert.equal(err.responseCode, 550);
    assert.match(err.response ?? '', /5\.7\.1 From header address <ceo@sluice\.test> is not one of yours/);
  });

  test('a granted role address (senderGrants) is allowed for the granted user only', async () => {
    const info = await send({ user: 'bob', from: 'info@sluice.test', subject: 'granted info' });
    assert.equal((await envelopeOf(info.response)).mailFrom.address, 'info@sluice.test');
    const err = await refusal(send({ from: 'info@sluice.test', subject: 'not granted info' }));
    assert.equal(err.responseCode, 553);
  });

  test('an alias that routes to the user (asked of the resolver) is theirs, and not another user', async () => {
    const info = await send({ from: 'team@sluice.test', subject: 'alias of alice' });
    assert.equal((await envelopeOf(info.response)).mailFrom.address, 'team@sluice.test');
    const err = await refusal(send({ user: 'bob', from: 'team@sluice.test', subject: 'alias not bob' }));
    assert.equal(err.responseCode, 553);
  });
});

describe('rate limits and bans', () => {
  test('per-user limit: the recipient over submission.rateLimits.perMinute gets 450 4.7.1', async () => {
    // The counters are fixed windows (the current minute): 51 recipients sent across a minute's
    // end would count in two windows. Start with at least 3 s of this minute left.
    const leftInMinute = 60_000 - (Date.now() % 60_000);
    if (leftInMinute < 3000) await new Promise((r) => setTimeout(r, leftInMinute + 50));
    const to = Array.from({ length: 51 }, (_, i) => `r${i}@remote.example`);
    const info = await send({ user: 'erin', from: 'erin@sluice.test', to, subject: 'cannon' });
    assert.equal(info.accepted.length, 50);
    assert.deepEqual(info.rejected, ['r50@remote.example']);
    const why = (info as { rejectedErrors?: Array<{ response?: string }> }).rejectedErrors?.[0]?.response;
    assert.match(why ?? '', /^450 4\.7\.1 Sending limit reached for erin: 50 recipients per minute/);
  });

  test('failed logins ban the user from that network, and the other replica answers the ban (454 4.7.0)', async () => {
    for (let i = 0; i < 3; i++) {
      await refusal(send({ user: 'frank', pass: `guess-${i}`, from: 'frank@sluice.test', subject: `g${i}` }));
    }
    const err = await refusal(
      send({ port: ports.implicitB, user: 'frank', from: 'frank@sluice.test', subject: 'right pw, banned' }),
    );
    assert.equal(err.responseCode, 454);
    assert.match(err.response ?? '', /^454 4\.7\.0 /);
  });
});

describe('relay door (mutual TLS)', () => {
  function relaySend(
    cert: TestClientCert | undefined,
    from: string,
    subject: string,
    to = ['customer@remote.example'],
  ) {
    const transport = createTransport({
      host: '127.0.0.1',
      port: ports.relay,
      secure: true,
      name: 'crm.internal',
      tls: { rejectUnauthorized: false, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
    });
    return transport
      .sendMail({ envelope: { from, to }, raw: message(from, subject) })
      .finally(() => transport.close());
  }

  test('a client certificate on the allow-list (by CN) relays its own domains, as source relay', async () => {
    const info = await relaySend(certs.crm, 'offers@news.sluice.test', 'crm mailing');
    const env = await envelopeOf(info.response);
    assert.equal(env.source, 'relay');
    assert.deepEqual(env.client.auth, { user: 'relay:crm', method: 'x509' });
    assert.equal(env.client.tls?.clientCertificate?.fingerprintSha256, certs.crm!.fingerprintSha256);
  });

  test('pinned by fingerprint: tickets relays; outside its sender domains 553 5.7.1', async () => {
    const info = await relaySend(certs.tickets, 'support@sluice.test', 'ticket reply');
    assert.equal((await envelopeOf(info.response)).client.auth?.user, 'relay:tickets');
    const err = await refusal(relaySend(certs.tickets, 'offers@news.sluice.test', 'tickets wrong domain'));
    assert.equal(err.responseCode, 553);
  });

  test('rate classes: a default client stops at its limit, the bulk client (CRM) does not', async () => {
    const to = Array.from({ length: 6 }, (_, i) => `c${i}@remote.example`);
    // tickets (default class, 5 per minute) relayed one recipient above already.
    const tickets = await relaySend(certs.tickets, 'support@sluice.test', 'tickets batch', to);
    assert.equal(tickets.accepted.length, 4);
    const why = (tickets as { rejectedErrors?: Array<{ response?: string }> }).rejectedErrors?.[0]?.response;
    assert.match(
      why ?? '',
      /^450 4\.7\.1 Sending limit reached for relay client tickets: 5 recipients per minute/,
    );
    const crm = await relaySend(certs.crm, 'offers@news.sluice.test', 'crm batch', to);
    assert.equal(crm.accepted.length, 6);
  });

  test('a certificate of our CA that the list does not name: 554 5.7.1', async () => {
    const err = await refusal(relaySend(certs.stranger, 'x@news.sluice.test', 'stranger'));
    assert.equal(err.responseCode, 554);
    assert.match(err.response ?? '', /5\.7\.1 Client certificate not allowed to relay/);
  });

  test('an unknown CA, an expired certificate and no certificate never get a session', async () => {
    for (const cert of [certs.foreign, certs.expired, undefined]) {
      const err = (await refusal(relaySend(cert, 'x@news.sluice.test', 'refused tls'))) as {
        code?: string;
        responseCode?: number;
      };
      assert.equal(err.responseCode, undefined, 'refused in the TLS handshake, before any SMTP reply');
      assert.ok(err.code, 'a connection error');
    }
  });
});

describe('client autoconfiguration', () => {
  test('the Mozilla autoconfig document names our host and the bound 465 and 587 ports', async () => {
    const xml = await new Promise<string>((resolve, reject) => {
      httpsGet(
        {
          host: '127.0.0.1',
          port: ports.autoconfig,
          path: '/mail/config-v1.1.xml?emailaddress=alice%40sluice.test',
          rejectUnauthorized: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () =>
            res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode}`)),
          );
        },
      ).on('error', reject);
    });
    assert.match(xml, /<displayName>Sluice Test Mail<\/displayName>/);
    const outgoing = [...xml.matchAll(/<outgoingServer type="smtp">([\s\S]*?)<\/outgoingServer>/g)].map(
      (m) => m[1]!,
    );
    assert.ok(outgoing.some((o) => o.includes(`<port>${ports.implicit}</port>`) && o.includes('SSL')));
    assert.ok(outgoing.some((o) => o.includes(`<port>${ports.starttls}</port>`) && o.includes('STARTTLS')));
    assert.ok(outgoing.every((o) => o.includes('<hostname>submit.sluice.test</hostname>')));
  });
});

describe('without the resolver', () => {
  test('an address only the resolver could vouch for: 451 4.7.0, never sent unchecked; own address still fine', async () => {
    await resolver.stop();
    running.splice(running.indexOf(resolver), 1);
    const err = await refusal(send({ from: 'team@sluice.test', subject: 'resolver away' }));
    assert.equal(err.responseCode, 451);
    assert.match(err.response ?? '', /^451 4\.7\.0 Sender address cannot be checked now/);
    const info = await send({ from: 'alice@sluice.test', subject: 'own address, resolver away' });
    assert.match(info.response, /^250 /);
  });
});
