/**
 * Cost of the rewriter's per-message work, single core: SRS forward and
 * reverse, DKIM dual signature (RSA 2048 + Ed25519) over a 10 KB message,
 * and an ARC set (mailauth). `node bench/rewriter-signing.ts`.
 */
import { generateKeyPairSync } from 'node:crypto';
import { arcSeal, buildKeyring, dkimSignature, splitMessage } from '@sluice/dkim';
import { Srs } from '@sluice/srs';

const pem = (t: 'rsa' | 'ed25519') =>
  (t === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ed25519')
  ).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
const ring = buildKeyring([
  { domain: 'example.org', selector: 'r', privateKey: pem('rsa'), active: true },
  { domain: 'example.org', selector: 'e', privateKey: pem('ed25519'), active: true },
]);
const message = Buffer.from(
  `From: a@example.org\r\nTo: b@x.test\r\nSubject: bench\r\nDate: ${new Date().toUTCString()}\r\n\r\n${'lorem ipsum dolor sit amet '.repeat(380)}\r\n`,
);

async function time(name: string, n: number, fn: () => unknown | Promise<unknown>) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const us = ((performance.now() - t0) * 1000) / n;
  console.log(
    `${name.padEnd(36)} ${us.toFixed(1).padStart(9)} µs/op  ${(1e6 / us).toFixed(0).padStart(8)} ops/s`,
  );
}

const srs = new Srs({ domain: 'srs.example.org', secrets: ['k'] });
const made = srs.forward('alice@sender.test').address;
await time('srs forward', 50_000, () => srs.forward('alice@sender.test'));
await time('srs reverse', 50_000, () => srs.reverse(made));
const { headers, body } = splitMessage(message);
const [rsa, ed] = ring.activeFor('example.org') as [(typeof ring.keys)[0], (typeof ring.keys)[0]];
await time('dkim rsa-sha256 (10 KB)', 500, () => dkimSignature(headers, body, rsa));
await time('dkim ed25519-sha256 (10 KB)', 2000, () => dkimSignature(headers, body, ed));
await time('arc seal rsa (10 KB, mailauth)', 300, () =>
  arcSeal(message, { key: rsa, authResults: 'mx.example.org; spf=pass', cv: 'none' }),
);
