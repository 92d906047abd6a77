/**
 * Test helpers of the filter (not exported by the package): RSA test keys
 * published through the harness' loopback DNS server, real DKIM signatures
 * made with mailauth's signer, messages and envelopes.
 */
import { generateKeyPairSync } from 'node:crypto';
import { type Envelope, newQueueId, sha256Hex } from '@sluice/proto';
import { dkimSign } from 'mailauth';

export interface TestKey {
  domain: string;
  selector: string;
  privateKey: string;
  /** The DNS TXT record that publishes it (RFC 6376 §3.6.1). */
  record: { name: string; type: 'TXT'; data: string };
}

export function testKey(domain: string, selector: string): TestKey {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKey = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const pub = keys.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return {
    domain,
    selector,
    privateKey,
    record: { name: `${selector}._domainkey.${domain}`, type: 'TXT', data: `v=DKIM1; k=rsa; p=${pub}` },
  };
}

export function message(opts: { from?: string; headers?: string[]; body?: string } = {}): Buffer {
  return Buffer.from(
    [
      ...(opts.headers ?? []),
      `From: ${opts.from ?? 'Alice <alice@sender.test>'}`,
      'To: bob@example.org',
      'Subject: filter test',
      'Date: Tue, 5 May 2026 10:00:00 +0000',
      `Message-ID: <${newQueueId()}@sender.test>`,
      '',
      opts.body ?? 'Hello Bob.\r\n',
    ].join('\r\n'),
  );
}

/** Prepend one DKIM-Signature per key (the first key's signature on top). */
export async function sign(
  msg: Buffer,
  keys: TestKey[],
  opts: { maxBodyLength?: number } = {},
): Promise<Buffer> {
  const first = keys[0]!;
  const r = await dkimSign(msg, {
    signingDomain: first.domain,
    selector: first.selector,
    privateKey: first.privateKey,
    signatureData: keys.map((k) => ({
      signingDomain: k.domain,
      selector: k.selector,
      privateKey: k.privateKey,
      ...(opts.maxBodyLength !== undefined ? { maxBodyLength: opts.maxBodyLength } : {}),
    })),
  });
  if (r.errors.length > 0) throw new Error(`dkimSign: ${JSON.stringify(r.errors)}`);
  return Buffer.concat([Buffer.from(r.signatures), msg]);
}

export function envelope(
  body: Uint8Array,
  ip: string,
  opts: { mailFrom?: string; source?: Envelope['source']; recipients?: string[]; helo?: string } = {},
): Envelope {
  return {
    v: 1,
    id: newQueueId(),
    receivedAt: new Date().toISOString(),
    source: opts.source ?? 'mx',
    receivedBy: 'mx.example.org',
    client: { ip, helo: opts.helo ?? 'client.sender.test' },
    mailFrom: { address: opts.mailFrom ?? 'alice@sender.test' },
    recipients: (opts.recipients ?? ['bob@example.org']).map((a) => ({
      address: a,
      original: a,
      status: 'pending',
    })),
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    prepend: [],
    hops: [],
  };
}
