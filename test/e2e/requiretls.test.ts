/**
 * REQUIRETLS (RFC 8689) through the whole pipeline, in one process (real
 * nats-server, every stage, real SMTP sinks): a client sends MAIL FROM ...
 * REQUIRETLS over STARTTLS to the ingress; the tag survives the resolver and
 * the rewriter; the egress delivers only over authenticated TLS (PKIX for
 * the configured transport host, our test certificate as the trust anchor)
 * to a next hop offering REQUIRETLS, and passes REQUIRETLS on. A forward to
 * a next hop without REQUIRETLS fails (5.7.30, nothing sent there) and the
 * DSN that reaches the sender carries REQUIRETLS itself (§5).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type SmtpSink, startSmtpSink } from '@sluice/test-harness';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { type Pipeline, startPipeline } from './helpers.ts';

let dir: string;
let pipeline: Pipeline;
/** The next hop offering REQUIRETLS (our mailboxes and the sender's domain). */
let secure: SmtpSink;
/** A TLS next hop that does not offer REQUIRETLS (a forward's target). */
let plain: SmtpSink;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-requiretls-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost'].concat([
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      'hop.key',
      '-out',
      'hop.pem',
    ]),
    { cwd: dir, stdio: 'ignore' },
  );
  const tls = { key: readFileSync(join(dir, 'hop.key')), cert: readFileSync(join(dir, 'hop.pem')) };
  secure = await startSmtpSink({ tls });
  plain = await startSmtpSink({ tls, hideRequireTls: true });
  pipeline = await startPipeline('e2e-requiretls', [], () => ({
    domains: { primary: 'example.org' },
    routing: { forwards: { 'bob@example.org': ['bob@norequire.test'] } },
    transports: {
      'example.org': { host: 'localhost', port: secure.port },
      'sender.test': { host: 'localhost', port: secure.port },
      'norequire.test': { host: 'localhost', port: plain.port },
    },
    srs: { secrets: [randomBytes(24).toString('base64')] },
    // The transports' certificate is our PKIX trust anchor here.
    egress: { retrySchedule: [1], mtaSts: { caFile: join(dir, 'hop.pem') } },
    bus: { queueLifetime: 60, maxDeliver: 1000 },
    ingress: { tls: { selfSigned: true, generatedDir: join(dir, 'ingress-tls') } },
  }));
});

after(async () => {
  await pipeline?.stop();
  await secure?.stop();
  await plain?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One message over STARTTLS with MAIL FROM ... REQUIRETLS (nodemailer as the client). */
async function sendRequireTls(to: string, subject: string): Promise<void> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port: pipeline.port,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    logger: false,
  });
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  const raw = `From: <sender@sender.test>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${randomBytes(8).toString('hex')}@sender.test>\r\n\r\nConfidential.\r\n`;
  await new Promise<void>((resolve, reject) => {
    const envelope = { from: 'sender@sender.test', to: [to], requireTLSExtensionEnabled: true };
    conn.send(envelope as SMTPConnection.Envelope, raw, (err) => (err ? reject(err) : resolve()));
  });
  conn.quit();
}

describe('REQUIRETLS end to end', () => {
  test('tagged at the ingress, delivered over authenticated TLS with REQUIRETLS passed on', async () => {
    const subject = `rtls ${randomBytes(4).toString('hex')}`;
    await sendRequireTls('alice@example.org', subject);
    const msg = await secure.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.deepEqual(msg.rcptTo, ['alice@example.org']);
    assert.equal(msg.secure, true);
    assert.equal(msg.mailParams.REQUIRETLS, true);
  });

  test('a forward to a hop without REQUIRETLS fails (5.7.30); the sender gets a DSN sent with REQUIRETLS', async () => {
    const subject = `rtls-fail ${randomBytes(4).toString('hex')}`;
    await sendRequireTls('bob@example.org', subject);
    const dsn = await secure.waitFor(
      (m) => m.mailFrom === '' && m.raw.includes(Buffer.from(subject)),
      30_000,
    );
    assert.deepEqual(dsn.rcptTo, ['sender@sender.test']);
    assert.equal(dsn.mailParams.REQUIRETLS, true, 'the DSN is protected like the message (§5)');
    assert.match(dsn.raw.toString(), /^Status: 5\.7\.30$/m);
    assert.equal(plain.messages.length, 0, 'nothing reached the hop without REQUIRETLS');
  });
});
