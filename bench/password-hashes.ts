/**
 * Cost of one password check per stored-hash format (what one AUTH costs the
 * submission service in CPU, before any NATS round trip), single core:
 * verifyPassword of the right password against a hash made by the tools
 * directories use, at their default costs, plus the stronger settings an
 * operator may choose (bcrypt cost 12, argon2id at RFC 9106's second
 * recommended option). `node bench/password-hashes.ts [--json FILE]`.
 * Numbers are measured by the integrator on a quiet machine.
 */
import { argon2Sync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { verifyPassword } from '@sluice/credentials';
import { FIXTURE_FORMATS, makeHash } from '@sluice/credentials/hash-fixtures';
import bcrypt from 'bcryptjs';

const PASSWORD = 'correct horse battery staple';
const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

function argon2id(memory: number, passes: number, parallelism: number): string {
  const nonce = randomBytes(16);
  const tag = argon2Sync('argon2id', {
    message: PASSWORD,
    nonce,
    parallelism,
    tagLength: 32,
    memory,
    passes,
  });
  return `{ARGON2}$argon2id$v=19$m=${memory},t=${passes},p=${parallelism}$${b64(nonce)}$${b64(tag)}`;
}

const cases: Array<{ name: string; hash: string }> = [];
for (const f of FIXTURE_FORMATS) {
  cases.push({
    name: f === 'CRYPT-2y' || f === 'CRYPT-2b' ? `${f} cost 5` : f,
    hash: await makeHash(f, PASSWORD),
  });
}
cases.push(
  {
    name: 'CRYPT-2y cost 10 (common default)',
    hash: `{CRYPT}${bcrypt.hashSync(PASSWORD, 10).replace('$2b$', '$2y$')}`,
  },
  { name: 'CRYPT-2y cost 12', hash: `{CRYPT}${bcrypt.hashSync(PASSWORD, 12).replace('$2b$', '$2y$')}` },
  { name: 'ARGON2-id m=64MiB t=3 p=4 (RFC 9106)', hash: argon2id(65536, 3, 4) },
);

const results: Array<{ format: string; msPerVerify: number; verifiesPerSecond: number }> = [];
for (const c of cases) {
  if (!(await verifyPassword(c.hash, PASSWORD)))
    throw new Error(`${c.name}: the right password did not verify`);
  // Enough iterations for about a second, at least 3.
  const t0 = performance.now();
  await verifyPassword(c.hash, PASSWORD);
  const once = performance.now() - t0;
  const n = Math.max(3, Math.min(20_000, Math.round(1000 / Math.max(once, 0.01))));
  const t1 = performance.now();
  for (let i = 0; i < n; i++) await verifyPassword(c.hash, PASSWORD);
  const ms = (performance.now() - t1) / n;
  results.push({ format: c.name, msPerVerify: ms, verifiesPerSecond: 1000 / ms });
  console.log(
    `${c.name.padEnd(40)} ${ms.toFixed(3).padStart(10)} ms/verify  ${(1000 / ms).toFixed(0).padStart(8)} /s`,
  );
}

const jsonAt = process.argv.indexOf('--json');
if (jsonAt > 0 && process.argv[jsonAt + 1]) {
  writeFileSync(
    process.argv[jsonAt + 1]!,
    `${JSON.stringify({ node: process.version, results }, null, 2)}\n`,
  );
}
