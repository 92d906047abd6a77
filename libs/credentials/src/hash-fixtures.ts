/**
 * Password hashes in every format the authenticator reads, made the way a
 * directory's tools make them (not by the code under test): `openssl passwd`
 * for $1$, $5$ and $6$, bcryptjs for $2y$/$2b$, slappasswd for {SSHA} and
 * {ARGON2} when it is installed (node:crypto otherwise), node:crypto for
 * {SSHA512}. For tests and the benchmark (import "@sluice/credentials/hash-fixtures").
 */
import { execFile } from 'node:child_process';
import { argon2Sync, createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';

const run = promisify(execFile);

export type FixtureFormat =
  | 'CRYPT-1'
  | 'CRYPT-5'
  | 'CRYPT-6'
  | 'CRYPT-2y'
  | 'CRYPT-2b'
  | 'SSHA'
  | 'SSHA512'
  | 'SHA'
  | 'ARGON2-id'
  | 'ARGON2-i';

export const FIXTURE_FORMATS: FixtureFormat[] = [
  'CRYPT-1',
  'CRYPT-5',
  'CRYPT-6',
  'CRYPT-2y',
  'CRYPT-2b',
  'SSHA',
  'SSHA512',
  'SHA',
  'ARGON2-id',
  'ARGON2-i',
];

/** `openssl passwd` reading the password from stdin (never on a command line). */
async function opensslStdin(flag: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = execFile('openssl', ['passwd', flag, '-stdin'], { encoding: 'utf8' }, (err, stdout) =>
      err ? reject(err) : resolve(stdout.trim()),
    );
    c.stdin?.end(`${password}\n`);
  });
}

async function slappasswd(args: string[], password: string): Promise<string | null> {
  try {
    const { stdout } = await run('/usr/sbin/slappasswd', [...args, '-s', password], { encoding: 'utf8' });
    return stdout.trim() || null;
  } catch {
    return null;
  }
}

function phcArgon2(kind: 'argon2id' | 'argon2i', password: string): string {
  const nonce = randomBytes(16);
  const p = { message: password, nonce, parallelism: 1, tagLength: 32, memory: 4096, passes: 3 };
  const tag = argon2Sync(kind, p);
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `{ARGON2}$${kind}$v=19$m=${p.memory},t=${p.passes},p=${p.parallelism}$${b64(nonce)}$${b64(tag)}`;
}

function saltedDigest(scheme: string, algorithm: string, password: string, salt: Buffer): string {
  const digest = createHash(algorithm).update(password, 'utf8').update(salt).digest();
  return `{${scheme}}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** The stored value of `password` in `format`. */
export async function makeHash(format: FixtureFormat, password: string): Promise<string> {
  switch (format) {
    case 'CRYPT-1':
      return `{CRYPT}${await opensslStdin('-1', password)}`;
    case 'CRYPT-5':
      return `{CRYPT}${await opensslStdin('-5', password)}`;
    case 'CRYPT-6':
      return `{CRYPT}${await opensslStdin('-6', password)}`;
    case 'CRYPT-2b':
      return `{CRYPT}${await bcrypt.hash(password, 5)}`;
    case 'CRYPT-2y':
      // PHP and Dovecot write $2y$; same algorithm as $2b$.
      return `{CRYPT}${(await bcrypt.hash(password, 5)).replace(/^\$2b\$/, '$2y$')}`;
    case 'SSHA':
      return (
        (await slappasswd(['-h', '{SSHA}'], password)) ??
        saltedDigest('SSHA', 'sha1', password, randomBytes(8))
      );
    case 'SSHA512':
      return saltedDigest('SSHA512', 'sha512', password, randomBytes(8));
    case 'SHA':
      return `{SHA}${createHash('sha1').update(password, 'utf8').digest('base64')}`;
    case 'ARGON2-i':
      // OpenLDAP's pw-argon2 module (its default is argon2i); node:crypto when slapd lacks it.
      return (
        (await slappasswd(['-o', 'module-load=argon2', '-h', '{ARGON2}'], password)) ??
        phcArgon2('argon2i', password)
      );
    case 'ARGON2-id':
      return phcArgon2('argon2id', password);
  }
}
