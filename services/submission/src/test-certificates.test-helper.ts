/**
 * Certificates for the relay (mutual TLS) tests, made with the openssl CLI:
 * a CA, client certificates it issues (valid, or one whose validity ended in
 * 2020: `openssl ca -startdate/-enddate`, the one way OpenSSL 3.0 backdates),
 * and a second, unknown CA. Each client comes with its SHA-256 fingerprint.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: string;
}

export interface TestClientCert {
  cert: string;
  key: string;
  fingerprintSha256: string;
}

const CA_CONFIG = `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = .
serial = ./serial
default_md = sha256
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
[ client_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
`;

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

export function makeCa(name: string): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ca-'));
  writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '01\n');
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '3650',
    '-subj',
    `/CN=${name}`,
  ]);
  const certFile = join(dir, 'ca.crt');
  return { dir, certFile, keyFile: join(dir, 'ca.key'), cert: readFileSync(certFile, 'utf8') };
}

let serial = 0;

/** A client certificate for `cn` issued by `ca`; `expired`: valid 1-2 January 2020 only. */
export function issueClientCert(ca: TestCa, cn: string, opts: { expired?: boolean } = {}): TestClientCert {
  const n = `c${++serial}`;
  openssl(ca.dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${n}.key`,
    '-out',
    `${n}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  const validity = opts.expired
    ? ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']
    : ['-days', '365'];
  openssl(ca.dir, [
    'ca',
    '-batch',
    '-config',
    'ca.cnf',
    '-cert',
    'ca.crt',
    '-keyfile',
    'ca.key',
    '-in',
    `${n}.csr`,
    '-out',
    `${n}.crt`,
    '-extensions',
    'client_ext',
    ...validity,
  ]);
  const cert = readFileSync(join(ca.dir, `${n}.crt`), 'utf8');
  const pem = cert.slice(cert.indexOf('-----BEGIN CERTIFICATE-----'));
  const fingerprintSha256 = new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
  return { cert: pem, key: readFileSync(join(ca.dir, `${n}.key`), 'utf8'), fingerprintSha256 };
}
