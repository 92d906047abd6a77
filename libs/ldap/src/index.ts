/**
 * @sluice/ldap: one LDAP session over the routing.ldap connection settings,
 * shared by the resolver's routing source and the submission's credential
 * snapshot: the first URL that answers (ldaps://, or ldap:// upgraded with
 * StartTLS per RFC 4511 §4.14, verified against caFile), bound as bindDn
 * (anonymous without), then `work`, then unbind. ldapts is loaded with the
 * first session, not with this module: a process whose config has no LDAP
 * never loads it (docs/decisions/0045).
 */
import { readFileSync } from 'node:fs';
import type { SluiceConfig } from '@sluice/config';
import type { Client } from 'ldapts';

export type LdapConfig = NonNullable<SluiceConfig['routing']['ldap']>;

/** Run `work` on a bound client of the first URL that answers; throws when none does. */
export async function withLdapClient<T>(
  cfg: LdapConfig,
  work: (c: Client, url: string) => Promise<T>,
): Promise<T> {
  const ca = cfg.caFile ? readFileSync(cfg.caFile) : undefined;
  const tlsOptions = ca ? { ca } : undefined;
  const { Client } = await import('ldapts');
  let lastError: unknown;
  for (const url of cfg.urls) {
    const client = new Client({
      url,
      timeout: cfg.timeout * 1000,
      connectTimeout: cfg.timeout * 1000,
      tlsOptions,
      strictDN: false,
    });
    try {
      if (cfg.startTls && url.startsWith('ldap://')) await client.startTLS(tlsOptions ?? {});
      if (cfg.bindDn) await client.bind(cfg.bindDn, cfg.bindPassword ?? '');
      return await work(client, url);
    } catch (err) {
      lastError = err;
    } finally {
      await client.unbind().catch(() => {});
    }
  }
  throw new Error(`LDAP unreachable (${cfg.urls.join(', ')}): ${(lastError as Error)?.message ?? lastError}`);
}

/** Attribute values as strings (UTF-8 for buffers), [] when absent. */
export function attributeValues(v: unknown): string[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}
