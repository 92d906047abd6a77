/**
 * End to end, as `sluice run` starts it: a user authenticates on 465 with the
 * mail password slapd holds, submits one message to an internal address (an
 * LDAP forward) and one outside, and both travel submission -> filter ->
 * resolver -> rewriter (DKIM for our From) -> egress to a real SMTP sink.
 * What arrives must not tell where the user was: neither the client IP nor
 * its HELO name anywhere in the delivered header section (privacy, issue 13).
 * Then the operator's path (decision 0040): wrong passwords over SMTP ban
 * the user from this network, the installed `sluice auth bans` shows it by
 * uid and address, `sluice auth unban` lifts it, and the user gets in.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeHash } from '@sluice/credentials/hash-fixtures';
import { dkimTxtRecord, loadDkimKey } from '@sluice/dkim';
import { type SlapdServer, sluiceBin, startSlapd } from '@sluice/test-harness';
import { createTransport } from 'nodemailer';
import { type Pipeline, startPipeline } from './helpers.ts';

const PASSWORD = 'correct horse battery staple';
const HELO = 'alices-laptop.home.example';
const dkimKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;

let slapd: SlapdServer;
let p: Pipeline;
let port: number;
let tlsDir: string;
const THROTTLE = { maxFailuresPerUserNetwork: 3 };

before(async () => {
  slapd = await startSlapd([
    { uid: 'alice', forwards: ['alice@forward.test'], mailPassword: [await makeHash('CRYPT-6', PASSWORD)] },
    { uid: 'bob', forwards: ['bob@forward.test'] },
  ]);
  tlsDir = mkdtempSync(join(tmpdir(), 'sluice-e2e-sub-'));
  p = await startPipeline(
    'e2e-submission',
    [
      {
        name: 's1._domainkey.sluice.test',
        type: 'TXT',
        data: dkimTxtRecord(
          loadDkimKey({ domain: 'sluice.test', selector: 's1', privateKey: dkimKey, active: true }, 's1'),
        ),
      },
    ],
    (sink) => ({
      hostname: 'mx.sluice.test',
      domains: { primary: 'sluice.test' },
      routing: {
        ldap: { urls: [slapd.url], baseDn: slapd.baseDn, filter: '(objectClass=account)', timeout: 2 },
      },
      transports: {
        'forward.test': { host: '127.0.0.1', port: sink.port },
        'outside.test': { host: '127.0.0.1', port: sink.port },
      },
      dkim: { keys: [{ domain: 'sluice.test', selector: 's1', privateKey: dkimKey }] },
      submission: {
        listen: { starttls: [], implicitTls: [{ host: '127.0.0.1', port: 0 }] },
        tls: { selfSigned: true, generatedDir: tlsDir },
        auth: { throttle: THROTTLE },
      },
    }),
  );
  const info = p.rt.service('submission')?.info?.() as { ports?: { implicit?: number[] } } | undefined;
  port = info?.ports?.implicit?.[0] ?? 0;
  assert.ok(port > 0, 'the submission service listens on 465 (here: a free port)');
});

after(async () => {
  await p?.stop();
  await slapd?.close();
});

test('submitted mail reaches an internal and an outside recipient, DKIM-signed, without the client in any header', async () => {
  const subject = `from the laptop ${randomBytes(4).toString('hex')}`;
  const transport = createTransport({
    host: '127.0.0.1',
    port,
    secure: true,
    name: HELO,
    tls: { rejectUnauthorized: false },
    auth: { user: 'alice', pass: PASSWORD },
  });
  const sent = await transport
    .sendMail({
      from: 'Alice <alice@sluice.test>',
      to: ['bob@sluice.test', 'carol@outside.test'],
      subject,
      text: 'Hello from wherever I am.',
    })
    .finally(() => transport.close());
  assert.match(sent.response, /^250 2\.0\.0 Ok: queued as /);

  const arrived = await Promise.all(
    ['bob@forward.test', 'carol@outside.test'].map((rcpt) =>
      p.sink.waitFor((m) => m.rcptTo.includes(rcpt) && m.raw.includes(Buffer.from(subject)), 30_000),
    ),
  );
  for (const m of arrived) {
    const raw = m.raw.toString('latin1');
    const headers = raw.slice(0, raw.indexOf('\r\n\r\n'));
    assert.doesNotMatch(headers, /127\.0\.0\.1|::1|\[::ffff:/, 'no client IP in any header');
    assert.ok(!headers.toLowerCase().includes(HELO), `no client HELO name in any header:\n${headers}`);
    assert.doesNotMatch(headers, /^X-Originating-IP:/im);
    assert.match(headers, /^Received: by mx\.sluice\.test \(Sluice\) with ESMTPSA id /m);
    assert.match(headers, /^DKIM-Signature:[\s\S]*?d=sluice\.test/m);
    assert.equal(m.mailFrom, 'alice@sluice.test');
  }
});

function sendAs(pass: string) {
  const transport = createTransport({
    host: '127.0.0.1',
    port,
    secure: true,
    tls: { rejectUnauthorized: false },
    auth: { user: 'alice', pass },
  });
  return transport
    .sendMail({ from: 'alice@sluice.test', to: 'carol@outside.test', subject: 'ban test', text: 'x' })
    .finally(() => transport.close());
}

/** The installed `sluice`, as the operator runs it, against this pipeline's NATS and LDAP. */
function sluice(configFile: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [sluiceBin, ...args, '--config', configFile],
      { timeout: 30_000 },
      (err, out) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out }),
    );
  });
}

test('wrong passwords ban the user from this network; `sluice auth bans` shows it, `sluice auth unban` lifts it', async () => {
  const configFile = join(tlsDir, 'cli.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      domains: { primary: 'sluice.test' },
      nats: { servers: [p.nats.url] },
      routing: { ldap: { urls: [slapd.url], baseDn: slapd.baseDn, filter: '(objectClass=account)' } },
      submission: { tls: { selfSigned: true, generatedDir: tlsDir }, auth: { throttle: THROTTLE } },
    }),
  );
  for (let i = 0; i < THROTTLE.maxFailuresPerUserNetwork; i++) {
    await assert.rejects(sendAs(`wrong-${i}`), (err: { responseCode?: number }) => err.responseCode === 535);
  }
  await assert.rejects(sendAs(PASSWORD), (err: { response?: string }) =>
    /^454 4\.7\.0 /.test(err.response ?? ''),
  );

  const bans = await sluice(configFile, 'auth', 'bans', '127.0.0.1');
  assert.equal(bans.code, 0, bans.out);
  assert.match(bans.out, /^1 ban in force for network 127\.0\.0\.1/);
  assert.match(bans.out, /user@network +alice from 127\.0\.0\.1, banned until/);
  assert.ok(!bans.out.includes('wrong-'), 'no password anywhere');

  const unban = await sluice(configFile, 'auth', 'unban', 'alice@sluice.test');
  assert.equal(unban.code, 0, unban.out);
  assert.match(unban.out, /^lifted 1 ban on user alice/);
  const sent = await sendAs(PASSWORD);
  assert.match(sent.response, /^250 /);
});
