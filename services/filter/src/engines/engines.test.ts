/**
 * The content engines against the real daemons from Debian (clamd with an
 * EICAR-only signature database, rspamd with the packaged rules), started by
 * the harness on free loopback ports; their timeouts and failure modes
 * against a listener that accepts and never answers, and a closed port.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '@sluice/config';
import {
  clamdAvailable,
  type DnsServer,
  EICAR,
  type EngineProcess,
  freePort,
  rspamdAvailable,
  startClamd,
  startDnsServer,
  startRspamd,
} from '@sluice/test-harness';
import { createDnsResolver } from '../dns-resolver.ts';
import { inlineContent } from '../message-content.ts';
import { envelope, message } from '../test-messages.ts';
import { computeVerdict, type FilterPolicy } from '../verdict.ts';
import { ClamdEngine } from './clamd.ts';
import { type ConfiguredEngine, runEngine } from './engine.ts';
import { RspamdEngine } from './rspamd.ts';

const weights = configSchema.parse({ domains: { primary: 'example.org' } }).filter.weights;
let dns: DnsServer;
let silent: Server;
let silentPort: number;
const held: import('node:net').Socket[] = [];

before(async () => {
  dns = await startDnsServer([]);
  // Accepts connections, reads everything, answers nothing: a hung engine.
  silent = createServer((s) => {
    held.push(s);
    s.on('data', () => {});
    s.on('error', () => {});
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  silentPort = (silent.address() as import('node:net').AddressInfo).port;
});

after(async () => {
  for (const s of held) s.destroy();
  silent?.close();
  await dns?.stop();
});

function policy(engines: ConfiguredEngine[]): FilterPolicy {
  return {
    weights,
    thresholds: { reject: 15, greylist: 6, tag: 4 },
    antiSpoofing: 'reject',
    ourDomains: new Set(['example.org']),
    engines,
  };
}

const deps = (engines: ConfiguredEngine[]) => ({
  authservId: 'mx.example.org',
  resolver: createDnsResolver({ servers: [dns.address], timeoutSeconds: 1 }),
  policy: policy(engines),
});

describe('engine timeouts and failure modes', () => {
  test('a hung clamd times out: tempfail by default, skip-and-tag when configured', async () => {
    const engine = new ClamdEngine({ host: '127.0.0.1', port: silentPort });
    const body = message();
    const started = Date.now();
    const tf = await computeVerdict(
      envelope(body, '192.0.2.1'),
      body,
      deps([{ engine, timeoutMs: 300, onFailure: 'tempfail' }]),
    );
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    assert.equal(tf.verdict.action, 'tempfail');
    assert.match(
      tf.verdict.rules.find((r) => r.name === 'ENGINE_FAILED')?.detail ?? '',
      /clamd: no answer within 300 ms/,
    );
    const sk = await computeVerdict(
      envelope(body, '192.0.2.1'),
      body,
      deps([{ engine, timeoutMs: 300, onFailure: 'skip' }]),
    );
    assert.notEqual(sk.verdict.action, 'tempfail');
    assert.ok(sk.verdict.rules.some((r) => r.name === 'ENGINE_SKIPPED'));
  });

  test('a hung rspamd times out; a closed port fails at once', async () => {
    const hung = await runEngine(
      {
        engine: new RspamdEngine(`http://127.0.0.1:${silentPort}`, weights),
        timeoutMs: 300,
        onFailure: 'tempfail',
      },
      inlineContent(message()),
      envelope(message(), '192.0.2.1'),
      Number.POSITIVE_INFINITY,
    );
    assert.equal(hung.kind, 'failed');
    const closed = await runEngine(
      {
        engine: new ClamdEngine({ host: '127.0.0.1', port: await freePort() }),
        timeoutMs: 5000,
        onFailure: 'skip',
      },
      inlineContent(message()),
      envelope(message(), '192.0.2.1'),
      Number.POSITIVE_INFINITY,
    );
    assert.deepEqual([closed.kind, closed.kind === 'failed' && closed.mode], ['failed', 'skip']);
  });

  test('the request deadline bounds an engine whose own timeout is longer', async () => {
    const started = Date.now();
    const o = await runEngine(
      {
        engine: new ClamdEngine({ host: '127.0.0.1', port: silentPort }),
        timeoutMs: 60_000,
        onFailure: 'tempfail',
      },
      inlineContent(message()),
      envelope(message(), '192.0.2.1'),
      Date.now() + 250,
    );
    assert.equal(o.kind, 'failed');
    assert.ok(Date.now() - started < 2000);
  });
});

describe('clamd (real)', {
  skip: clamdAvailable() ? false : 'clamd not installed (scripts/setup.sh test)',
}, () => {
  let clamd: EngineProcess;
  before(async () => {
    clamd = await startClamd();
  });
  after(async () => {
    await clamd?.stop();
  });
  const engine = () => ({
    engine: new ClamdEngine({ host: clamd.host, port: clamd.port }),
    timeoutMs: 10_000,
    onFailure: 'tempfail' as const,
  });

  test('the EICAR test file in an attachment is found and the message rejected', async () => {
    const body = message({
      headers: ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"'],
      body: [
        '--b1',
        'Content-Type: text/plain',
        '',
        'see attachment',
        '--b1',
        'Content-Type: application/octet-stream; name="eicar.com"',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from(EICAR).toString('base64'),
        '--b1--',
        '',
      ].join('\r\n'),
    });
    const reply = await computeVerdict(envelope(body, '192.0.2.1'), body, deps([engine()]));
    assert.equal(reply.verdict.action, 'reject');
    assert.equal(reply.verdict.reason, 'Virus found');
    assert.match(
      reply.verdict.rules.find((r) => r.name === 'VIRUS_FOUND')?.detail ?? '',
      /Eicar-Test-Signature/,
    );
  });

  test('a large body (object store) is streamed to clamd from a fresh stream; the virus deep inside is found', async () => {
    const filler = `${'x'.repeat(76)}\r\n`.repeat(40_000); // ~3 MB before the virus
    const whole = message({ body: `${filler}${EICAR}\r\n` });
    const headerEnd = whole.indexOf('\r\n\r\n') + 4;
    let opened = 0;
    const content = {
      bytes: whole.subarray(0, headerEnd),
      complete: false,
      open: async () => {
        opened++;
        return Readable.from(
          Array.from({ length: Math.ceil(whole.length / 65536) }, (_, i) =>
            whole.subarray(i * 65536, (i + 1) * 65536),
          ),
        );
      },
    };
    const reply = await computeVerdict(
      envelope(whole, '192.0.2.1'),
      whole.subarray(0, headerEnd),
      deps([engine()]),
      Number.POSITIVE_INFINITY,
      content,
    );
    assert.equal(opened, 1);
    assert.equal(reply.verdict.action, 'reject');
    assert.equal(reply.verdict.reason, 'Virus found');
  });

  test('a clean message larger than one INSTREAM chunk passes', async () => {
    const body = message({ body: `${'clean line of text\r\n'.repeat(20_000)}` });
    const reply = await computeVerdict(envelope(body, '192.0.2.1'), body, deps([engine()]));
    assert.ok(!reply.verdict.rules.some((r) => r.name === 'VIRUS_FOUND' || r.name.startsWith('ENGINE_')));
    assert.notEqual(reply.verdict.action, 'reject');
  });
});

describe('rspamd (real)', {
  skip: rspamdAvailable() ? false : 'rspamd not installed (scripts/setup.sh test)',
}, () => {
  let rspamd: EngineProcess;
  before(async () => {
    rspamd = await startRspamd({ dnsServer: dns.address });
  });
  after(async () => {
    await rspamd?.stop();
  });

  test('its score and symbols are merged into the verdict', async () => {
    const engine = new RspamdEngine(`http://${rspamd.host}:${rspamd.port}`, weights);
    const body = Buffer.from('From: someone\r\nSubject: \r\n\r\nBUY NOW http://192.0.2.7/x\r\n');
    const reply = await computeVerdict(
      envelope(body, '192.0.2.1'),
      body,
      deps([{ engine, timeoutMs: 20_000, onFailure: 'tempfail' }]),
    );
    const score = reply.verdict.rules.find((r) => r.name === 'RSPAMD_SCORE');
    assert.ok(score, JSON.stringify(reply.verdict.rules));
    assert.match(score.detail ?? '', /^rspamd score -?[\d.]+ action /);
    const symbols = reply.verdict.rules.filter(
      (r) => r.name.startsWith('RSPAMD_') && r.name !== 'RSPAMD_SCORE',
    );
    assert.ok(symbols.length > 0, 'rspamd reported symbols');
    // A message without Date and Message-ID: rspamd has its own rules for that.
    assert.ok(
      symbols.some((s) => /MISSING_DATE|MISSING_MID/.test(s.name)),
      symbols.map((s) => s.name).join(' '),
    );
    assert.ok(score.score > 0);
  });
});
