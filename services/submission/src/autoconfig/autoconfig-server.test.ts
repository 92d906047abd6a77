/**
 * The autoconfig endpoint over real HTTP and HTTPS on 127.0.0.1: each
 * document fetched the way its client fetches it and read by the client-side
 * readers; foreign domains 404; injection attempts refused without echo; an
 * XXE Autodiscover request refused; oversize bodies, wrong methods and unknown
 * paths answered; no client IP or address in the logs; a renewed certificate
 * served without a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createLogger } from '@sluice/log';
import { certificateFiles } from '@sluice/smtp-intake';
import { createMetrics } from '@sluice/telemetry';
import { waitUntil } from '@sluice/test-harness';
import type { AutoconfigOptions } from './autoconfig-options.ts';
import {
  type AutoconfigServer,
  HEADERS_TIMEOUT_MS,
  MAX_BODY_BYTES,
  MAX_HEADER_BYTES,
  startAutoconfigServer,
} from './autoconfig-server.ts';
import { AUTODISCOVER_REQUEST_NS } from './autodiscover-request.ts';
import { parseXml, plistToValue, readLikeThunderbird } from './client-readers.test-helper.ts';

const options: AutoconfigOptions = {
  domains: ['example.org', 'alias.example'],
  displayName: 'Example Mail',
  submissionHost: 'smtp.example.org',
  ports: { submission: 587, submissions: 465 },
  imapHost: 'imap.provider.example',
};

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  fingerprint?: string;
}

interface Target {
  port: number;
  tls?: { ca: Buffer; servername: string };
}

function call(
  t: Target,
  method: string,
  path: string,
  body?: string,
  extra: { chunked?: boolean; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const { chunked = false } = extra;
  return new Promise((resolve, reject) => {
    const opts = {
      host: '127.0.0.1',
      port: t.port,
      method,
      path,
      headers: {
        ...extra.headers,
        ...(body === undefined
          ? {}
          : chunked
            ? { 'content-type': 'text/xml', 'transfer-encoding': 'chunked' }
            : { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) }),
      },
      agent: false,
    } as const;
    const req = t.tls
      ? httpsRequest({ ...opts, ca: t.tls.ca, servername: t.tls.servername }, onResponse)
      : httpRequest(opts, onResponse);
    function onResponse(res: import('node:http').IncomingMessage) {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const socket = res.socket as TLSSocket;
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          ...(t.tls ? { fingerprint: socket.getPeerCertificate().fingerprint256 } : {}),
        });
      });
      res.on('error', reject);
    }
    req.on('error', reject);
    req.end(body);
  });
}

const outlookRequest = (email: string) => `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="${AUTODISCOVER_REQUEST_NS}">
  <Request>
    <EMailAddress>${email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;

function capturedLogger() {
  const lines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    instance: 'test',
    destination: { write: (l: string) => lines.push(l) },
  });
  return { logger, lines };
}

describe('autoconfig endpoint over HTTP', () => {
  let server: AutoconfigServer;
  let t: Target;
  const { logger, lines } = capturedLogger();
  const metrics = createMetrics();

  before(async () => {
    server = await startAutoconfigServer({
      ...options,
      listen: { host: '127.0.0.1', port: 0 },
      logger,
      metrics,
    });
    t = { port: server.port };
  });
  after(() => server.close());

  it('serves the Mozilla document at both paths, read as Thunderbird reads it', async () => {
    for (const path of ['/mail/config-v1.1.xml', '/.well-known/autoconfig/mail/config-v1.1.xml']) {
      const r = await call(t, 'GET', `${path}?emailaddress=${encodeURIComponent('jane@alias.example')}`);
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers['content-type']), /^application\/xml/);
      const tb = readLikeThunderbird(r.body);
      assert.equal(tb.id, 'alias.example');
      assert.deepEqual(
        [tb.outgoing.hostname, tb.outgoing.port, tb.outgoing.socketType],
        ['smtp.example.org', 465, 'SSL'],
      );
    }
    const plainGet = await call(t, 'GET', '/mail/config-v1.1.xml');
    assert.equal(
      readLikeThunderbird(plainGet.body).id,
      'example.org',
      'no address, unknown host: the primary',
    );
    const byHost = await call(t, 'GET', '/mail/config-v1.1.xml', undefined, {
      headers: { host: 'autoconfig.alias.example:443' },
    });
    assert.deepEqual(
      readLikeThunderbird(byHost.body).domains,
      ['alias.example'],
      'no address: the Host names it',
    );
    const head = await call(t, 'HEAD', '/mail/config-v1.1.xml');
    assert.deepEqual([head.status, head.body], [200, '']);
  });

  it('answers 404 for foreign domains and refuses injection attempts without echoing them', async () => {
    const foreign = await call(t, 'GET', '/mail/config-v1.1.xml?emailaddress=jane%40elsewhere.example');
    assert.equal(foreign.status, 404);
    assert.doesNotMatch(foreign.body, /elsewhere/);
    for (const attempt of [
      '"><incomingServer type="imap"><hostname>evil.example</hostname>@example.org',
      'jane@example.org</domain><domain>evil.example',
      'jane@example.org\r\nx-injected: 1',
    ]) {
      const r = await call(t, 'GET', `/mail/config-v1.1.xml?emailaddress=${encodeURIComponent(attempt)}`);
      assert.equal(r.status, 400, attempt);
      assert.doesNotMatch(r.body, /evil|injected/);
      assert.equal(r.headers['x-injected'], undefined);
    }
    const apple = await call(
      t,
      'GET',
      `/apple/mobileconfig?emailaddress=${encodeURIComponent('a<b>@example.org')}`,
    );
    assert.equal(apple.status, 400);
  });

  it('answers Autodiscover POSTs and refuses an XXE payload', async () => {
    const ok = await call(t, 'POST', '/Autodiscover/Autodiscover.xml', outlookRequest('jane@example.org'));
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['content-type']), /^text\/xml/);
    const account = (
      (parseXml(ok.body).Autodiscover as Record<string, unknown>).Response as Record<string, unknown>
    ).Account as Record<string, unknown>;
    const protocols = ([] as Record<string, string>[]).concat(account.Protocol as Record<string, string>);
    assert.deepEqual(
      protocols.map((p) => [p.Type, p.Server, p.Port, p.LoginName]),
      [
        ['IMAP', 'imap.provider.example', '993', 'jane@example.org'],
        ['SMTP', 'smtp.example.org', '465', 'jane@example.org'],
      ],
    );
    const xxe = `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>${outlookRequest('&x;')}`;
    const refused = await call(t, 'POST', '/autodiscover/autodiscover.xml', xxe);
    assert.equal(refused.status, 400);
    assert.doesNotMatch(refused.body, /root:/);
    const foreign = await call(
      t,
      'POST',
      '/autodiscover/autodiscover.xml',
      outlookRequest('jane@elsewhere.example'),
    );
    assert.equal(foreign.status, 404);
    const mobilesync = outlookRequest('jane@example.org').replace(
      'outlook/responseschema/2006a',
      'mobilesync/responseschema/2006',
    );
    assert.equal((await call(t, 'POST', '/autodiscover/autodiscover.xml', mobilesync)).status, 404);
  });

  it('caps bodies, checks methods and paths', async () => {
    const big = outlookRequest('jane@example.org').replace(
      '<Request>',
      `<Request>${' '.repeat(MAX_BODY_BYTES)}`,
    );
    assert.equal((await call(t, 'POST', '/autodiscover/autodiscover.xml', big)).status, 413);
    assert.equal(
      (await call(t, 'POST', '/autodiscover/autodiscover.xml', big, { chunked: true })).status,
      413,
      'chunked',
    );
    const small = outlookRequest('jane@example.org');
    assert.equal(
      (await call(t, 'POST', '/autodiscover/autodiscover.xml', small, { chunked: true })).status,
      200,
      'chunked',
    );
    const get = await call(t, 'GET', '/autodiscover/autodiscover.xml');
    assert.deepEqual([get.status, get.headers.allow], [405, 'POST']);
    const put = await call(t, 'PUT', '/mail/config-v1.1.xml', 'x');
    assert.deepEqual([put.status, put.headers.allow], [405, 'GET, HEAD']);
    assert.equal((await call(t, 'GET', '/etc/passwd')).status, 404);
    assert.equal((await call(t, 'GET', '/')).status, 404);
  });

  it('drops a client that never finishes its headers, and refuses oversized headers', async () => {
    const started = Date.now();
    const socket = connect(t.port, '127.0.0.1');
    socket.write('GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.org\r\n');
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString();
    });
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const waited = Date.now() - started;
    assert.ok(
      waited >= HEADERS_TIMEOUT_MS - 100 && waited < HEADERS_TIMEOUT_MS + 3000,
      `closed after ${waited} ms`,
    );
    assert.match(received, /^HTTP\/1\.1 408/);
    const huge = await call(t, 'GET', `/mail/config-v1.1.xml?emailaddress=${'a'.repeat(MAX_HEADER_BYTES)}`);
    assert.equal(huge.status, 431);
  });

  it('answers Autodiscover v2 (JSON) in both URL forms', async () => {
    const q = await call(
      t,
      'GET',
      '/autodiscover/autodiscover.json?Email=jane%40example.org&Protocol=AutodiscoverV1',
    );
    assert.equal(q.status, 200);
    assert.deepEqual(JSON.parse(q.body), {
      Protocol: 'AutodiscoverV1',
      Url: 'https://autodiscover.example.org/autodiscover/autodiscover.xml',
    });
    const p = await call(
      t,
      'GET',
      '/autodiscover/autodiscover.json/v1.0/jane@alias.example?Protocol=AutodiscoverV1',
    );
    assert.equal(JSON.parse(p.body).Url, 'https://autodiscover.alias.example/autodiscover/autodiscover.xml');
    const ews = await call(t, 'GET', '/autodiscover/autodiscover.json?Email=jane%40example.org&Protocol=Ews');
    assert.equal(ews.status, 404);
  });

  it('serves the Apple profile as application/x-apple-aspen-config', async () => {
    const r = await call(t, 'GET', '/apple/mobileconfig?emailaddress=jane%40example.org');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/x-apple-aspen-config');
    assert.match(
      String(r.headers['content-disposition']),
      /attachment; filename="example\.org\.mobileconfig"/,
    );
    const profile = plistToValue(r.body) as Record<string, unknown>;
    const mail = (profile.PayloadContent as Record<string, unknown>[])[0]!;
    assert.deepEqual(
      [
        mail.PayloadType,
        mail.EmailAddress,
        mail.OutgoingMailServerHostName,
        mail.OutgoingMailServerPortNumber,
      ],
      ['com.apple.mail.managed', 'jane@example.org', 'smtp.example.org', 465],
    );
    assert.equal((await call(t, 'GET', '/apple/mobileconfig')).status, 400);
  });

  it('logs the document and domain, never the client IP or the address', () => {
    const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'autoconfig request');
    assert.ok(requests.length >= 10, `request lines logged: ${requests.length}`);
    assert.ok(requests.some((l) => l.route === 'mobileconfig' && l.domain === 'example.org'));
    const all = lines.join('\n');
    assert.doesNotMatch(all, /127\.0\.0\.1.*autoconfig request|"remote|jane@|elsewhere/);
    for (const l of requests) assert.ok(!JSON.stringify(l).includes('127.0.0.1'), JSON.stringify(l));
  });

  it('counts requests by document and status', async () => {
    const counted = async (document: string, status: string) => {
      const values = (await metrics.registry.getSingleMetric('sluice_autoconfig_requests_total')!.get())
        .values;
      return values.find((v) => v.labels.document === document && v.labels.status === status)?.value ?? 0;
    };
    const before = await counted('mozilla', '404');
    await call(t, 'GET', '/mail/config-v1.1.xml?emailaddress=x%40foreign.example');
    assert.equal(await counted('mozilla', '404'), before + 1);
    assert.ok((await counted('autodiscover', '200')) >= 2);
    assert.ok((await counted('none', '404')) >= 2);
  });
});

describe('autoconfig endpoint over HTTPS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-autoconfig-'));
  // The intake's self-signed certificate maker (openssl, CN and SAN autoconfig.example.org); made again for a renewal.
  const makeCert = () => {
    rmSync(join(dir, 'cert.pem'), { force: true });
    rmSync(join(dir, 'key.pem'), { force: true });
    return certificateFiles({ selfSigned: true, generatedDir: dir }, 'autoconfig.example.org')!;
  };
  const { certFile, keyFile } = makeCert();
  let server: AutoconfigServer;
  const { logger } = capturedLogger();

  before(async () => {
    server = await startAutoconfigServer({
      ...options,
      listen: { host: '127.0.0.1', port: 0 },
      tls: { certFile, keyFile, pollIntervalMs: 50 },
      logger,
    });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the documents with a verified certificate, and a renewed one without restart', async () => {
    const tls = { ca: readFileSync(certFile), servername: 'autoconfig.example.org' };
    const r = await call(
      { port: server.port, tls },
      'GET',
      '/mail/config-v1.1.xml?emailaddress=jane%40example.org',
    );
    assert.equal(r.status, 200);
    assert.equal(readLikeThunderbird(r.body).incoming.hostname, 'imap.provider.example');
    const first = r.fingerprint;
    assert.ok(first);

    makeCert();
    const renewed = { ca: readFileSync(certFile), servername: 'autoconfig.example.org' };
    const next = await waitUntil('the renewed certificate to be served', async () => {
      const again = await call(
        { port: server.port, tls: renewed },
        'POST',
        '/autodiscover/autodiscover.xml',
        outlookRequest('jane@example.org'),
      );
      return again.fingerprint !== first && again;
    });
    assert.equal(next.status, 200);
  });

  it('refuses to start on a bad key pair, naming the files', async () => {
    await assert.rejects(
      startAutoconfigServer({
        ...options,
        listen: { host: '127.0.0.1', port: 0 },
        tls: { certFile, keyFile: certFile },
        logger,
      }),
      /submission\.autoconfig\.tls: cannot load/,
    );
  });
});
