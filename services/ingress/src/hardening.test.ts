/**
 * The hardened MX (issue 10) against real clients on real sockets: a real
 * nats-server, the real filter, raw sockets for hostile input, Node's TLS
 * client with a test CA for STARTTLS. Each limit and refusal code, the
 * smuggling variants, unauthorised pipelining, PROXY v1 and v2, a certificate
 * swapped on disk mid-run, and one client taking every slot it may while
 * another is still served.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { Bus, RpcServer } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { filterService } from '@sluice/filter';
import { decodeEnvelope, queueGroups, streams, subjects } from '@sluice/proto';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  startDnsServer,
  startNats,
  startServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { ingressService } from './ingress-service.ts';
import { RawSmtp } from './raw-smtp.test-helper.ts';

let nats: NatsTestServer;
let dns: DnsServer;
let bus: Bus;
let jsm: JetStreamManager;
let ctx: ServiceContext;
let filter: RunningService;
let ingress: RunningService;
let proxied: RunningService;
let lookup: RpcServer;
let port: number;
let proxyPort: number;
const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
const decoder = new TextDecoder();

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A test CA and a server certificate for mx.example.org signed by it, with `serial`. */
function issue(name: string, serial: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'subjectAltName=DNS:mx.example.org\n');
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    '/CN=mx.example.org',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    join(dir, 'ca.pem'),
    '-CAkey',
    join(dir, 'ca.key'),
    '-set_serial',
    serial,
    '-days',
    '2',
    '-out',
    cert,
    '-extfile',
    ext,
  );
  return { cert, key };
}

function config(extra: Record<string, unknown>): SluiceConfig {
  return parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      bus: { publishTimeout: 2 },
      ingress: {
        listen: [{ host: '127.0.0.1', port: 0 }],
        maxMessageBytes: 2 * 1024 * 1024,
        filterTimeout: 2,
        lookupTimeout: 1,
        tls: { certFile: join(dir, 'live.pem'), keyFile: join(dir, 'live.key') },
        limits: {
          perIp: 4,
          perNet: 6,
          softErrors: 2,
          hardErrors: 4,
          unknownRecipients: 3,
          commandTimeout: 1,
          dataTimeout: 1,
          maxSessionTime: 30,
        },
        drainTimeout: 2,
        ...extra,
      },
      dns: { servers: [dns.address], timeout: 1 },
      log: { level: 'warn' },
    },
    'ingress-hardening-test',
  );
}

before(async () => {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(dir, 'ca.key'),
    '-out',
    join(dir, 'ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Sluice Test CA',
  );
  const first = issue('first', '0x1001');
  writeFileSync(join(dir, 'live.pem'), readFileSync(first.cert));
  writeFileSync(join(dir, 'live.key'), readFileSync(first.key));
  nats = await startNats();
  dns = await startDnsServer([
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 ip4:192.0.2.0/24 -all' },
  ]);
  const cfg = config({});
  ({ bus, ctx } = await startServiceContext(cfg, 'ingress-hardening-test', {
    logDestination: new Writable({ write: (_c, _e, cb) => cb() }) as never,
  }));
  jsm = await jetstreamManager(bus.nc);
  lookup = bus.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 8 }, async (req) => {
    const { address } = JSON.parse(decoder.decode(req.data)) as { address: string };
    const known = ['alice@example.org', '"a b"@example.org'].includes(address.toLowerCase());
    const result = known ? 'ok' : 'unknown';
    return new TextEncoder().encode(JSON.stringify({ v: 1, result, targets: [], trail: [] }));
  });
  filter = await filterService.start(ctx);
  ingress = await ingressService.start(ctx);
  port = (ingress.info!() as { ports: number[] }).ports[0]!;
  proxied = await ingressService.start({ ...ctx, config: config({ proxyFrom: ['127.0.0.1'] }) });
  proxyPort = (proxied.info!() as { ports: number[] }).ports[0]!;
});

after(async () => {
  await proxied?.stop();
  await ingress?.stop();
  await filter?.stop();
  await lookup?.stop();
  await bus?.close();
  await dns?.stop();
  await nats?.stop();
});

async function lastQueued() {
  const m = await jsm.streams.getMessage(streams.resolve.name, { last_by_subj: subjects.resolve });
  if (!m) throw new Error('nothing queued');
  return decodeEnvelope(m.data).envelope;
}

/** Connect, read the greeting, EHLO. */
async function session(p = port, preamble?: Buffer): Promise<RawSmtp> {
  const c = await RawSmtp.open(p, preamble);
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.command('EHLO client.test'), /^250 /);
  return c;
}

const MSG = 'From: s@sender.test\r\nTo: alice@example.org\r\nSubject: t\r\n\r\nhello\r\n';

describe('STARTTLS', () => {
  test('offered; TLS 1.2+ with the configured certificate; Received records ESMTPS with version and cipher', async () => {
    const c = await RawSmtp.open(port);
    await c.reply();
    c.write('EHLO client.test\r\n');
    assert.match(await c.reply(), /^250 /);
    assert.match(await c.command('STARTTLS'), /^220 /);
    const cert = await c.startTls({ ca: readFileSync(join(dir, 'ca.pem')), servername: 'mx.example.org' });
    assert.equal(cert.serialNumber.replace(/^0+/, ''), '1001');
    assert.match(await c.command('EHLO client.test'), /^250 /);
    assert.match(await c.command('MAIL FROM:<s@sender.test>'), /^250 /);
    assert.match(await c.command('RCPT TO:<alice@example.org>'), /^250 /);
    assert.match(await c.command('DATA'), /^354 /);
    assert.match(await c.command(`${MSG}.`), /^250 2\.0\.0 Ok: queued as /);
    const env = await lastQueued();
    const received = env.prepend?.[0]?.value ?? '';
    assert.match(received, /with ESMTPS id /);
    assert.match(received, /\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)/);
    c.close();
  });

  test('REQUIRETLS (RFC 8689): advertised only under TLS, refused in cleartext with 530 5.7.10, tagged on the envelope', async () => {
    const clear = await RawSmtp.open(port);
    await clear.reply();
    clear.write('EHLO client.test\r\n');
    assert.doesNotMatch(await clear.wholeReply(), /REQUIRETLS/);
    assert.match(await clear.command('MAIL FROM:<s@sender.test> REQUIRETLS'), /^530 5\.7\.10 /);
    clear.close();

    const c = await RawSmtp.open(port);
    await c.reply();
    c.write('EHLO client.test\r\n');
    await c.reply();
    assert.match(await c.command('STARTTLS'), /^220 /);
    await c.startTls({ ca: readFileSync(join(dir, 'ca.pem')), servername: 'mx.example.org' });
    c.write('EHLO client.test\r\n');
    assert.match(await c.wholeReply(), /^250[ -]REQUIRETLS\r?$/m);
    assert.match(await c.command('MAIL FROM:<s@sender.test> REQUIRETLS'), /^250 /);
    assert.match(await c.command('RCPT TO:<alice@example.org>'), /^250 /);
    assert.match(await c.command('DATA'), /^354 /);
    // Another text than MSG: the same message again would be taken for a client's resend (dedupIds.accepted).
    const msg = MSG.replace('Subject: t', 'Subject: requiretls');
    assert.match(await c.command(`${msg}.`), /^250 2\.0\.0 Ok: queued as /);
    assert.equal((await lastQueued()).mailFrom.requireTls, true);
    c.close();
  });

  test('TLS 1.1 is refused', async () => {
    const c = await session();
    assert.match(await c.command('STARTTLS'), /^220 /);
    await assert.rejects(
      new Promise((resolve, reject) => {
        import('node:tls').then(({ connect }) => {
          const s = connect(
            { socket: c.socket, rejectUnauthorized: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' },
            () => resolve(s),
          );
          s.once('error', reject);
        });
      }),
    );
    c.close();
  });

  test('a certificate swapped on disk is used by the next handshake, without a restart', async () => {
    const second = issue('second', '0x2002');
    // Write beside, then rename: the watcher must never load a half-written pair.
    writeFileSync(join(dir, 'live.key.new'), readFileSync(second.key));
    writeFileSync(join(dir, 'live.pem.new'), readFileSync(second.cert));
    renameSync(join(dir, 'live.key.new'), join(dir, 'live.key'));
    renameSync(join(dir, 'live.pem.new'), join(dir, 'live.pem'));
    await waitUntil(
      'the new certificate served',
      async () => {
        const c = await session();
        await c.command('STARTTLS');
        const cert = await c.startTls({
          ca: readFileSync(join(dir, 'ca.pem')),
          servername: 'mx.example.org',
        });
        c.close();
        return cert.serialNumber.replace(/^0+/, '') === '2002';
      },
      { timeoutMs: 15_000, intervalMs: 500 },
    );
  });
});

describe('limits', () => {
  test('one client IP takes every slot it may (perIp 4): the next gets 421 4.7.0, another client is still served', async () => {
    const held = await Promise.all([1, 2, 3, 4].map(() => session()));
    const fifth = await RawSmtp.open(port);
    assert.match(await fifth.reply(), /^421 mx\.example\.org 4\.7\.0 Too many connections from your address/);
    await fifth.whenClosed;
    // Another client (the PROXY listener names it 192.0.2.9) still gets a session.
    const other = await RawSmtp.open(proxyPort, Buffer.from('PROXY TCP4 192.0.2.9 192.0.2.1 4000 25\r\n'));
    assert.match(await other.reply(), /^220 /);
    other.close();
    for (const h of held) h.close();
    // A slot is free again once one closes.
    await waitUntil('a slot freed', async () => {
      const c = await RawSmtp.open(port);
      const r = await c.reply();
      c.close();
      return r.startsWith('220 ');
    });
  });

  test('unknown recipients: 550 each, then 421 4.7.0 and disconnect at the limit (3)', async () => {
    const c = await session();
    assert.match(await c.command('MAIL FROM:<s@sender.test>'), /^250 /);
    const replies: string[] = [];
    for (const n of [1, 2, 3]) replies.push(await c.command(`RCPT TO:<nobody${n}@example.org>`));
    for (const r of replies) assert.match(r, /^550 5\.1\.1 /);
    assert.equal(await c.reply(), '421 4.7.0 Too many unknown recipients, closing connection');
    await c.whenClosed;
  });

  test('errors: growing delays after the soft limit, 421 4.7.0 at the hard limit', async () => {
    const c = await session();
    const started = Date.now();
    for (let i = 0; i < 3; i++) assert.match(await c.command('RCPT TO:<alice@example.org>'), /^503 /);
    // The third error waited 1 s (one over softErrors 2): the delay is real.
    assert.ok(Date.now() - started >= 900, `errors answered too fast: ${Date.now() - started} ms`);
    assert.match(await c.command('RCPT TO:<alice@example.org>'), /^503 /);
    assert.equal(await c.reply(), '421 4.7.0 Too many errors, closing connection');
    await c.whenClosed;
  });

  test('slow loris: a command trickled one byte at a time gets 421 4.4.2 after commandTimeout', async () => {
    const c = await session();
    const started = Date.now();
    const trickle = setInterval(() => c.write('N'), 200);
    const r = await c.reply(10_000);
    clearInterval(trickle);
    assert.equal(r, '421 4.4.2 Timeout exceeded, closing connection');
    assert.ok(Date.now() - started < 5000);
    await c.whenClosed;
  });

  test('a message body trickled past dataTimeout gets 421 4.4.2', async () => {
    const c = await session();
    await c.command('MAIL FROM:<s@sender.test>');
    await c.command('RCPT TO:<alice@example.org>');
    assert.match(await c.command('DATA'), /^354 /);
    const trickle = setInterval(() => c.write('x'), 200);
    const r = await c.reply(15_000);
    clearInterval(trickle);
    assert.equal(r, '421 4.4.2 Timeout exceeded, closing connection');
    await c.whenClosed;
  });
});

describe('smuggling and lines', () => {
  const refusedBody = async (body: string | Buffer) => {
    const c = await session();
    await c.command('MAIL FROM:<s@sender.test>');
    await c.command('RCPT TO:<alice@example.org>');
    assert.match(await c.command('DATA'), /^354 /);
    c.write(body);
    const r = await c.reply();
    c.close();
    return r;
  };
  test('NUL, the \\r\\n\\0.\\r\\n variant: 550 5.6.0', async () => {
    const r = await refusedBody(`${MSG}x\r\n\0.\r\nMAIL FROM:<ceo@example.org>\r\n.\r\n`);
    assert.equal(r, '550 5.6.0 Message content rejected: NUL character');
  });
  test('lines of 10,000 and 1,000,000 octets: 550 5.6.0; 998 pass', async () => {
    for (const n of [10_000, 1_000_000]) {
      const r = await refusedBody(`${MSG}${'y'.repeat(n)}\r\n.\r\n`);
      assert.equal(r, '550 5.6.0 Message content rejected: line longer than 998 characters');
    }
    const ok = await refusedBody(`${MSG}${'y'.repeat(998)}\r\n.\r\n`);
    assert.match(ok, /^250 /);
  });
  test('bare LF dot LF: 550 5.5.2 (as before)', async () => {
    const r = await refusedBody(`${MSG}a\n.\nMAIL FROM:<ceo@example.org>\r\n.\r\n`);
    assert.match(r, /^550 5\.5\.2 /);
  });
});

describe('CHUNKING (RFC 3030) is not offered (decision 0035)', () => {
  test('EHLO does not list CHUNKING or BINARYMIME; BDAT in a transaction is refused (5xx)', async () => {
    const c = await RawSmtp.open(port);
    await c.reply();
    c.write('EHLO client.test\r\n');
    const all = await c.wholeReply();
    assert.match(all.split('\n').at(-1)!, /^250 /);
    assert.match(all, /PIPELINING/);
    assert.doesNotMatch(all, /CHUNKING|BINARYMIME/);
    assert.match(await c.command('MAIL FROM:<s@sender.test>'), /^250 /);
    assert.match(await c.command('RCPT TO:<alice@example.org>'), /^250 /);
    assert.match(await c.command('BDAT 5 LAST'), /^5\d\d /);
    c.close();
  });
});

describe('RCPT tarpit (ingress.tarpit)', () => {
  let slowed: RunningService;
  let listed: RunningService;
  const portOf = (s: RunningService) => (s.info!() as { ports: number[] }).ports[0]!;
  before(async () => {
    slowed = await ingressService.start({
      ...ctx,
      config: config({ tarpit: { delay: 1, afterUnknownRecipients: 2, networks: [] } }),
    });
    listed = await ingressService.start({
      ...ctx,
      config: config({ tarpit: { delay: 1, afterUnknownRecipients: 100, networks: ['127.0.0.0/8'] } }),
    });
  });
  after(async () => {
    await slowed?.stop();
    await listed?.stop();
  });
  const timed = async (c: RawSmtp, line: string) => {
    const t0 = performance.now();
    const reply = await c.command(line);
    return { reply, ms: performance.now() - t0 };
  };

  test('after 2 unknown recipients every RCPT reply waits 1 s, known ones too; the limit still ends the session', async () => {
    const c = await session(portOf(slowed));
    assert.match(await c.command('MAIL FROM:<s@sender.test>'), /^250 /);
    for (const n of [1, 2]) {
      const r = await timed(c, `RCPT TO:<nobody${n}@example.org>`);
      assert.match(r.reply, /^550 5\.1\.1 /);
      assert.ok(r.ms < 900, `unknown recipient ${n} was answered at once (${r.ms.toFixed(0)} ms)`);
    }
    const known = await timed(c, 'RCPT TO:<alice@example.org>');
    assert.match(known.reply, /^250 /);
    assert.ok(known.ms >= 990, `slowed after two unknown: ${known.ms.toFixed(0)} ms`);
    const third = await timed(c, 'RCPT TO:<nobody3@example.org>');
    assert.match(third.reply, /^550 5\.1\.1 /);
    assert.ok(third.ms >= 990);
    assert.equal(await c.reply(), '421 4.7.0 Too many unknown recipients, closing connection');
    await c.whenClosed;
  });

  test('a client in tarpit.networks waits from its first RCPT; MAIL is not slowed', async () => {
    const c = await session(portOf(listed));
    const mail = await timed(c, 'MAIL FROM:<s@sender.test>');
    assert.ok(mail.ms < 900);
    const first = await timed(c, 'RCPT TO:<alice@example.org>');
    assert.match(first.reply, /^250 /);
    assert.ok(first.ms >= 990, `listed network slowed: ${first.ms.toFixed(0)} ms`);
    c.close();
  });

  test('off by default: the main listener answers unknown recipients at once', async () => {
    const c = await session();
    await c.command('MAIL FROM:<s@sender.test>');
    for (const n of [1, 2]) {
      const r = await timed(c, `RCPT TO:<nobody${n}@example.org>`);
      assert.ok(r.ms < 900, `${r.ms.toFixed(0)} ms`);
    }
    c.close();
  });
});

describe('command lines end in CRLF (RFC 5321 §2.3.8): 500 5.5.2 and disconnect', () => {
  test('a bare LF ends MAIL FROM: refused, never run, the session closed', async () => {
    const c = await session();
    c.write('MAIL FROM:<s@sender.test>\n');
    assert.equal(await c.reply(), '500 5.5.2 Error: bare <LF> received');
    assert.equal(await c.reply(), 'CLOSED');
  });
  test('a bare LF on the first command (EHLO)', async () => {
    const c = await RawSmtp.open(port);
    assert.match(await c.reply(), /^220 /);
    c.write('EHLO client.test\n');
    assert.equal(await c.reply(), '500 5.5.2 Error: bare <LF> received');
    await c.whenClosed;
  });
  test('a bare CR inside a line (two commands framed as one for a CR-splitting hop)', async () => {
    const c = await session();
    c.write('MAIL FROM:<s@sender.test>\rRCPT TO:<alice@example.org>\r\n');
    assert.equal(await c.reply(), '500 5.5.2 Error: bare <CR> received');
    assert.equal(await c.reply(), 'CLOSED');
  });
  test('a bare LF in a pipelined group after EHLO: the group is refused, the message never queued', async () => {
    const c = await session();
    c.write(`MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@example.org>\nDATA\r\n`);
    const got: string[] = [];
    for (let r = await c.reply(); r !== 'CLOSED'; r = await c.reply()) got.push(r);
    assert.deepEqual(got, ['500 5.5.2 Error: bare <LF> received']);
  });
  test('CR and LF of one line end in two writes are a proper CRLF', async () => {
    const c = await session();
    c.write('MAIL FROM:<s@sender.test>\r');
    c.write('\n');
    assert.match(await c.reply(), /^250 /);
    c.close();
  });
});

describe('unauthorised pipelining (RFC 2920 §3.1): 554 5.5.0 and disconnect', () => {
  test('two whole transactions in one write (content sent before the 354)', async () => {
    const c = await session();
    const tx = `MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n${MSG}.\r\n`;
    c.write(tx + tx);
    const got: string[] = [];
    for (;;) {
      const r = await c.reply();
      got.push(r);
      if (r === 'CLOSED' || r.startsWith('554')) break;
    }
    assert.equal(got.at(-1), '554 5.5.0 Error: SMTP protocol synchronization');
    assert.ok(!got.some((r) => r.startsWith('250 2.0.0')), `nothing queued: ${JSON.stringify(got)}`);
    await c.whenClosed;
  });
  test('after HELO (no PIPELINING) a group of commands', async () => {
    const c = await RawSmtp.open(port);
    await c.reply();
    assert.match(await c.command('HELO client.test'), /^250 /);
    c.write('MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@example.org>\r\n');
    assert.equal(await c.reply(), '554 5.5.0 Error: SMTP protocol synchronization');
    await c.whenClosed;
  });
  test('commands behind EHLO in the same write', async () => {
    const c = await RawSmtp.open(port);
    await c.reply();
    c.write('EHLO client.test\r\nMAIL FROM:<s@sender.test>\r\n');
    assert.equal(await c.reply(), '554 5.5.0 Error: SMTP protocol synchronization');
    await c.whenClosed;
  });
  test('allowed pipelining after EHLO: MAIL, RCPT, DATA in one write is fine', async () => {
    const c = await session();
    c.write('MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n');
    assert.match(await c.reply(), /^250 /);
    assert.match(await c.reply(), /^250 /);
    assert.match(await c.reply(), /^354 /);
    assert.match(await c.command(`${MSG}.`), /^250 2\.0\.0 /);
    c.close();
  });
});

describe('parameters and addresses', () => {
  test('unknown MAIL and RCPT parameters: 555 5.5.4; DSN parameters accepted', async () => {
    const c = await session();
    assert.match(await c.command('MAIL FROM:<s@sender.test> FOO=bar'), /^555 5\.5\.4 /);
    assert.match(await c.command('MAIL FROM:<s@sender.test> RET=HDRS ENVID=abc'), /^250 /);
    assert.match(await c.command('RCPT TO:<alice@example.org> XYZZY'), /^555 5\.5\.4 /);
    assert.match(
      await c.command('RCPT TO:<alice@example.org> NOTIFY=FAILURE ORCPT=rfc822;alice@example.org'),
      /^250 /,
    );
    c.close();
  });
});

describe('quoted local parts (RFC 5321 §4.1.2)', () => {
  test('"a b"@example.org is accepted at RCPT, with parameters after it', async () => {
    const c = await session();
    assert.match(await c.command('MAIL FROM:<"x y"@sender.test> RET=HDRS'), /^250 /);
    assert.match(await c.command('RCPT TO:<"a b"@example.org> NOTIFY=NEVER'), /^250 /);
    assert.match(await c.command('RCPT TO:<"un terminated@example.org>'), /^501 /);
    c.close();
  });
});

describe('PROXY protocol', () => {
  test('v1 from a trusted source names the client', async () => {
    const c = await session(proxyPort, Buffer.from('PROXY TCP4 192.0.2.7 192.0.2.1 4000 25\r\n'));
    await c.command('MAIL FROM:<s@sender.test>');
    await c.command('RCPT TO:<alice@example.org>');
    await c.command('DATA');
    assert.match(await c.command(`${MSG}.`), /^250 /);
    assert.equal((await lastQueued()).client?.ip, '192.0.2.7');
    c.close();
  });
  test('v2 (binary) from a trusted source names the client', async () => {
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const addr = Buffer.from([192, 0, 2, 8, 192, 0, 2, 1, 0x0f, 0xa0, 0, 25]);
    const header = Buffer.concat([sig, Buffer.from([0x21, 0x11, 0, 12]), addr]);
    const c = await session(proxyPort, header);
    await c.command('MAIL FROM:<s@sender.test>');
    await c.command('RCPT TO:<alice@example.org>');
    await c.command('DATA');
    assert.match(await c.command(`${MSG}.`), /^250 /);
    assert.equal((await lastQueued()).client?.ip, '192.0.2.8');
    c.close();
  });
  test('a PROXY header from an untrusted source is not believed', async () => {
    const c = await RawSmtp.open(port, Buffer.from('PROXY TCP4 192.0.2.7 192.0.2.1 4000 25\r\n'));
    const r = await c.reply();
    // smtp-server sees the line as input before its greeting or as an unknown command: never a session as 192.0.2.7.
    assert.ok(!/^250/.test(r));
    c.close();
  });
});

describe('greeting delay (early talkers)', () => {
  test('greetDelay 0 (default) greets at once; with a delay a client talking first gets 421', async () => {
    const t0 = Date.now();
    const quick = await RawSmtp.open(port);
    assert.match(await quick.reply(), /^220 /);
    assert.ok(Date.now() - t0 < 90, `greeting took ${Date.now() - t0} ms`);
    quick.close();
    const delayed = await ingressService.start({ ...ctx, config: config({ greetDelay: 0.3 }) });
    try {
      const p = (delayed.info!() as { ports: number[] }).ports[0]!;
      const early = await RawSmtp.open(p, Buffer.from('EHLO early.test\r\n'));
      assert.match(await early.reply(), /^421 .*You talk too soon/);
      early.close();
      const patient = await RawSmtp.open(p);
      assert.match(await patient.reply(), /^220 /);
      patient.close();
    } finally {
      await delayed.stop();
    }
  });
});

describe('maximum session time', () => {
  test('a client that keeps the session busy with NOOPs is cut at maxSessionTime', async () => {
    const short = await ingressService.start({
      ...ctx,
      config: config({ limits: { maxSessionTime: 1, commandTimeout: 5 } }),
    });
    try {
      const c = await session((short.info!() as { ports: number[] }).ports[0]!);
      let last = '';
      const started = Date.now();
      while (!last.startsWith('421') && Date.now() - started < 5000) last = await c.command('NOOP');
      assert.equal(last, '421 4.4.2 Timeout exceeded, closing connection');
      await c.whenClosed;
    } finally {
      await short.stop();
    }
  });
});

describe('drain on stop', () => {
  test('idle sessions get 421 at once, new ones 421 4.3.2, a transaction in flight finishes with 250', async () => {
    const draining = await ingressService.start({ ...ctx, config: config({ drainTimeout: 5 }) });
    const p = (draining.info!() as { ports: number[] }).ports[0]!;
    const idle = await session(p);
    const busy = await session(p);
    await busy.command('MAIL FROM:<s@sender.test>');
    await busy.command('RCPT TO:<alice@example.org>');
    const stopped = draining.stop();
    assert.match(await idle.reply(), /^421 4\.3\.2 /);
    const late = await RawSmtp.open(p);
    assert.equal(await late.reply(), '421 mx.example.org 4.3.2 Service shutting down, try again later');
    assert.match(await busy.command('DATA'), /^354 /);
    assert.match(await busy.command(`${MSG}.`), /^250 2\.0\.0 /);
    assert.match(await busy.reply(), /^421 4\.3\.2 /);
    await stopped;
  });
});

describe('a real client', () => {
  test('swaks with STARTTLS required delivers; the queued Received says ESMTPS', async () => {
    const { execFile } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'swaks',
        [
          '--server',
          `127.0.0.1:${port}`,
          '--from',
          's@sender.test',
          '--to',
          'alice@example.org',
          '-tls',
          '--helo',
          'swaks.test',
        ],
        { timeout: 20_000 },
        (err, stdout) => (err ? reject(new Error(`${err.message}\n${stdout}`)) : resolve(stdout)),
      ),
    );
    assert.match(out, /<~ {2}250 2\.0\.0 Ok: queued as /);
    assert.match((await lastQueued()).prepend?.[0]?.value ?? '', /with ESMTPS id /);
  });
});
