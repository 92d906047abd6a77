/**
 * Read the users and their password hashes from LDAP with ldapts, over the
 * same connection settings as routing.ldap: the first URL that answers
 * (ldaps://, or ldap:// upgraded with StartTLS, RFC 4511 §4.14, verified
 * against caFile), bound as bindDn (anonymous without), one paged search
 * (RFC 2696) of baseDn for entries that match the filter and HAVE the
 * password attribute. Values are read as bytes and decoded as UTF-8 (hash
 * strings are ASCII). A user id with whitespace, '@' or control characters
 * is skipped: it could not be typed as a SASL user name unambiguously.
 */
import { readFileSync } from 'node:fs';
import { Client } from 'ldapts';
import type { LdapConnection } from './types.ts';

export interface DirectoryUser {
  /** The user id as the directory spells it (the canonical id AUTH answers with). */
  uid: string;
  /** Stored password values, "{SCHEME}..." (usually one). */
  hashes: string[];
  /** Other names the user logs in with (lower case): addresses from the login attributes. */
  logins: string[];
}

export interface UserRead {
  users: DirectoryUser[];
  /** The URL that answered. */
  server: string;
}

export interface UserQuery {
  userAttribute: string;
  passwordAttribute: string;
  userFilter?: string;
  loginAttributes: string[];
}

function values(v: unknown): string[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

/** (&FILTER USERFILTER (PASSWORD=*)): only entries that can log in. */
export function userSearchFilter(ldap: LdapConnection, q: UserQuery): string {
  return `(&${ldap.filter}${q.userFilter ?? ''}(${q.passwordAttribute}=*))`;
}

export async function readUsers(ldap: LdapConnection, q: UserQuery): Promise<UserRead> {
  const ca = ldap.caFile ? readFileSync(ldap.caFile) : undefined;
  const tlsOptions = ca ? { ca } : undefined;
  let lastError: unknown;
  for (const url of ldap.urls) {
    const client = new Client({
      url,
      timeout: ldap.timeout * 1000,
      connectTimeout: ldap.timeout * 1000,
      tlsOptions,
      strictDN: false,
    });
    try {
      if (ldap.startTls && url.startsWith('ldap://')) await client.startTLS(tlsOptions ?? {});
      if (ldap.bindDn) await client.bind(ldap.bindDn, ldap.bindPassword ?? '');
      const { searchEntries } = await client.search(ldap.baseDn, {
        scope: 'sub',
        filter: userSearchFilter(ldap, q),
        attributes: [q.userAttribute, q.passwordAttribute, ...q.loginAttributes],
        explicitBufferAttributes: [q.passwordAttribute],
        paged: { pageSize: 500 },
        timeLimit: Math.ceil(ldap.timeout),
      });
      const users: DirectoryUser[] = [];
      for (const e of searchEntries) {
        const uid = values(e[q.userAttribute])[0];
        if (uid === undefined || /[\x00-\x20@]/.test(uid)) continue;
        const hashes = values(e[q.passwordAttribute]).filter((h) => h.length > 0);
        if (hashes.length === 0) continue;
        const logins = q.loginAttributes
          .flatMap((a) => values(e[a]))
          .map((l) => l.trim().toLowerCase())
          .filter((l) => l.length > 0 && !/[\x00-\x20]/.test(l));
        users.push({ uid, hashes, logins: [...new Set(logins)] });
      }
      return { users, server: url };
    } catch (err) {
      lastError = err;
    } finally {
      await client.unbind().catch(() => {});
    }
  }
  throw new Error(
    `LDAP unreachable (${ldap.urls.join(', ')}): ${(lastError as Error)?.message ?? lastError}`,
  );
}
