/**
 * How a Sluice process reaches NATS and authenticates, and how it names a
 * server without leaking a secret.
 *
 * The embedded nats-server (nats.servers empty) requires a token generated
 * once per data dir and kept in DIR/auth-token, mode 0600, reused across
 * restarts: local users other than the operator cannot publish into the
 * deliver stream and relay mail through the egress (docs/decisions/0007).
 * `sluice trace` reads the same file. A configured NATS uses the configured
 * user/password/token.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { SluiceConfig } from '@sluice/config';

export const TOKEN_FILE = 'auth-token';

/** The embedded server's data dir, absolute. */
export function embeddedDataDir(config: SluiceConfig, baseDir = process.cwd()): string {
  return resolve(baseDir, config.nats.embedded.dataDir);
}

/** The token of the embedded server of `dir`: read it, or create it (0600) on first use. */
export async function embeddedToken(dir: string): Promise<string> {
  const file = join(dir, TOKEN_FILE);
  const existing = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (existing.length >= 32) {
    await chmod(file, 0o600);
    return existing;
  }
  await mkdir(dir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return token;
}

export interface NatsAccess {
  servers: string[];
  token?: string;
}

/** Servers and credentials for a client (the CLI) of this config's NATS. */
export async function natsAccessOf(config: SluiceConfig, baseDir?: string): Promise<NatsAccess> {
  if (config.nats.servers.length > 0) return { servers: config.nats.servers };
  const e = config.nats.embedded;
  const file = join(embeddedDataDir(config, baseDir), TOKEN_FILE);
  const token = (await readFile(file, 'utf8').catch(() => '')).trim();
  return { servers: [`nats://${e.host}:${e.port}`], token: token || undefined };
}

/** A URL fit for logs and messages: any user:password@ in it becomes ***@. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}
