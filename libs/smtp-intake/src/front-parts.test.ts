import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConnectionLimits, cidrMatcher, networkOf } from './connection-limits.ts';
import { parseProxyHeader } from './proxy-header.ts';
import { certificateFiles } from './tls-certificate.ts';

describe('connection limits', () => {
  test('networks: IPv4 /24, IPv6 /64 (compressed forms normalised)', () => {
    assert.equal(networkOf('192.0.2.77'), '192.0.2.0/24');
    assert.equal(networkOf('2001:db8:0:1::5'), '2001:db8:0:1::/64');
    assert.equal(networkOf('2001:0db8:0000:0001:ffff::1'), '2001:db8:0:1::/64');
  });
  test('per IP, per network, total; release frees the slot; trusted only in the total', () => {
    const limits = new ConnectionLimits({ total: 4, perIp: 2, perNet: 3 }, cidrMatcher(['10.0.0.0/8'], 'k'));
    const a1 = limits.admit('192.0.2.1');
    const a2 = limits.admit('192.0.2.1');
    assert.deepEqual(limits.admit('192.0.2.1'), { ok: false, scope: 'ip' });
    assert.ok(limits.admit('192.0.2.2').ok);
    assert.deepEqual(limits.admit('192.0.2.3'), { ok: false, scope: 'net' });
    assert.ok(a1.ok && a2.ok);
    if (a1.ok) a1.release();
    if (a1.ok) a1.release(); // twice is once
    assert.ok(limits.admit('192.0.2.1').ok);
    assert.ok(limits.admit('10.1.1.1').ok);
    assert.deepEqual(limits.admit('10.1.1.1'), { ok: false, scope: 'total' });
  });
  test('a bad CIDR fails naming the key', () => {
    assert.throws(
      () => cidrMatcher(['10.0.0.0/33'], 'ingress.proxyFrom'),
      /ingress\.proxyFrom: "10\.0\.0\.0\/33"/,
    );
  });
});

describe('PROXY header parsing', () => {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  test('v1 TCP4 and TCP6, UNKNOWN; partial input waits', () => {
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1234 25\r\nEHLO')), {
      done: true,
      header: { remoteAddress: '192.0.2.1', remotePort: 1234 },
      used: 40,
    });
    const v6 = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 25\r\n'));
    assert.ok('done' in v6 && v6.done && v6.header.remoteAddress === '2001:db8::1');
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), {
      done: true,
      header: {},
      used: 15,
    });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 1.2')), { done: false });
    assert.ok('error' in parseProxyHeader(Buffer.from('EHLO x\r\n')));
    assert.ok('error' in parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(120)}`)));
  });
  test('v2 IPv4, IPv6 and LOCAL', () => {
    const v4 = Buffer.concat([
      sig,
      Buffer.from([0x21, 0x11, 0, 12, 192, 0, 2, 9, 192, 0, 2, 1, 0x30, 0x39, 0, 25]),
    ]);
    assert.deepEqual(parseProxyHeader(v4), {
      done: true,
      header: { remoteAddress: '192.0.2.9', remotePort: 12345 },
      used: 28,
    });
    const addr6 = Buffer.alloc(36);
    addr6.writeUInt16BE(0x2001, 0);
    addr6.writeUInt16BE(0xdb8, 2);
    addr6.writeUInt16BE(7, 14);
    addr6.writeUInt16BE(999, 32);
    const v6 = parseProxyHeader(Buffer.concat([sig, Buffer.from([0x21, 0x21, 0, 36]), addr6]));
    assert.ok('done' in v6 && v6.done);
    if ('done' in v6 && v6.done)
      assert.deepEqual(v6.header, { remoteAddress: '2001:db8:0:0:0:0:0:7', remotePort: 999 });
    assert.deepEqual(parseProxyHeader(Buffer.concat([sig, Buffer.from([0x20, 0x00, 0, 0])])), {
      done: true,
      header: {},
      used: 16,
    });
    assert.deepEqual(parseProxyHeader(sig.subarray(0, 8)), { done: false });
  });
});

describe('self-signed STARTTLS certificate', () => {
  test('generated once at first start for the hostname, then reused', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sluice-selfsigned-')), 'tls');
    const files = certificateFiles({ selfSigned: true, generatedDir: dir }, 'mx.example.org');
    assert.ok(files);
    const cert = new X509Certificate(readFileSync(files.certFile));
    assert.match(cert.subjectAltName ?? '', /DNS:mx\.example\.org/);
    const again = certificateFiles({ selfSigned: true, generatedDir: dir }, 'mx.example.org');
    assert.equal(new X509Certificate(readFileSync(again!.certFile)).serialNumber, cert.serialNumber);
  });
  test('no files and no selfSigned: no STARTTLS; only one of the pair: fails naming the keys', () => {
    assert.equal(certificateFiles({ selfSigned: false, generatedDir: '/nonexistent' }, 'h'), undefined);
    assert.throws(
      () => certificateFiles({ certFile: '/x.pem', selfSigned: false, generatedDir: '' }, 'h'),
      /ingress\.tls: set both certFile and keyFile/,
    );
  });
});
