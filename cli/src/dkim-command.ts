/**
 * `sluice dkim keygen --domain D --selector S [--type rsa|ed25519] [--bits N] [--out FILE]`:
 * makes a DKIM key pair like opendkim-genkey. The private key (PKCS#8 PEM,
 * mode 0600, never overwritten) goes to FILE (default ./S.private), to be
 * mounted as a secret and listed in dkim.keys; the DNS TXT record to publish
 * at S._domainkey.D is printed in zone-file form (strings of at most 255
 * octets, RFC 1035 §3.3.14). RSA is 2048 bits by default (RFC 8301 §3.2).
 * `sluice dkim rotate --domain D --selector NEW [--old OLD] ...` makes the
 * next key the same way and prints the rotation steps (dkim-rotation.ts).
 * Exit status: 0 done, 1 could not write, 2 usage.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { dkimTxtRecord, loadDkimKey } from '@sluice/dkim';
import { rotationSteps } from './dkim-rotation.ts';
import type { CommandIo } from './srs-command.ts';

export const DKIM_USAGE = `usage:
  sluice dkim keygen --domain D --selector S [--type rsa|ed25519] [--bits 2048] [--out FILE]
                     writes the private key (default ./S.private) and prints the DNS TXT record
  sluice dkim rotate --domain D --selector NEW [--old OLD] [--type rsa|ed25519] [--ttl 3600] [--out FILE]
                     the same for the next key, then the steps: publish, wait, activate, retire`;

const stdio: CommandIo = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`sluice: ${l}\n`),
};

/** The record as a zone-file line: quoted strings of at most 255 octets. */
export function zoneRecord(selector: string, domain: string, record: string): string {
  const chunks = record.match(/.{1,250}/g) ?? [record];
  const quoted = chunks.map((c) => `"${c}"`).join('\n\t  ');
  return `${selector}._domainkey\tIN\tTXT\t( ${quoted} )  ; ----- DKIM key ${selector} for ${domain}`;
}

export async function runDkimCommand(argv: string[], io: CommandIo = stdio): Promise<number> {
  let values: {
    domain?: string;
    selector?: string;
    type?: string;
    bits?: string;
    out?: string;
    old?: string;
    ttl?: string;
    help?: boolean;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        domain: { type: 'string', short: 'd' },
        selector: { type: 'string', short: 's' },
        type: { type: 'string', short: 't', default: 'rsa' },
        bits: { type: 'string', short: 'b', default: '2048' },
        out: { type: 'string', short: 'o' },
        old: { type: 'string' },
        ttl: { type: 'string', default: '3600' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    io.err((err as Error).message);
    return 2;
  }
  if (values.help) {
    io.out(DKIM_USAGE);
    return 0;
  }
  const { domain, selector } = values;
  const command = positionals[0];
  if ((command !== 'keygen' && command !== 'rotate') || positionals.length !== 1 || !domain || !selector) {
    io.err(DKIM_USAGE);
    return 2;
  }
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/i.test(selector)) {
    io.err(`--selector ${selector}: letters, digits, "-", "_" and dots only`);
    return 2;
  }
  const bits = Number(values.bits);
  if (values.type !== 'rsa' && values.type !== 'ed25519') {
    io.err('--type must be rsa or ed25519');
    return 2;
  }
  if (values.type === 'rsa' && (!Number.isInteger(bits) || bits < 2048 || bits > 8192)) {
    io.err('--bits must be 2048..8192 for RSA');
    return 2;
  }
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 0) {
    io.err('--ttl must be the TTL of the record in seconds');
    return 2;
  }
  if (values.old !== undefined && values.old === selector) {
    io.err('--old must name the selector in use now, not the new one');
    return 2;
  }
  const pair =
    values.type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: bits })
      : generateKeyPairSync('ed25519');
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const out = values.out ?? `${selector}.private`;
  try {
    writeFileSync(out, pem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    io.err(
      code === 'EEXIST' ? `${out} exists — not overwritten; give --out` : `${out}: ${(err as Error).message}`,
    );
    return 1;
  }
  const key = loadDkimKey({ domain, selector, privateKey: pem, active: true }, out);
  const record = zoneRecord(selector, domain, dkimTxtRecord(key));
  if (command === 'rotate') {
    for (const line of rotationSteps({
      domain,
      selector,
      ...(values.old ? { old: values.old } : {}),
      type: values.type,
      keyFile: out,
      zoneRecord: record,
      ttlSeconds: ttl,
    }))
      io.out(line);
    return 0;
  }
  io.out(record);
  io.err(
    `private key written to ${out} (mode 0600); list it in dkim.keys as { domain: ${domain}, selector: ${selector}, privateKey: { file: ... } }`,
  );
  return 0;
}
