/**
 * Read the users and their password hashes from LDAP over the same
 * connection settings as routing.ldap (@sluice/ldap: failover, StartTLS,
 * bind), one paged search
 * (RFC 2696) of baseDn for entries that match the filter and HAVE the
 * password attribute. Values are read as bytes and decoded as UTF-8 (hash
 * strings are ASCII). A user id with whitespace, '@' or control characters
 * is skipped: it could not be typed as a SASL user name unambiguously.
 */
import { attributeValues as values, withLdapClient } from '@sluice/ldap';
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

/** (&FILTER USERFILTER (PASSWORD=*)): only entries that can log in. */
export function userSearchFilter(ldap: LdapConnection, q: UserQuery): string {
  return `(&${ldap.filter}${q.userFilter ?? ''}(${q.passwordAttribute}=*))`;
}

export async function readUsers(ldap: LdapConnection, q: UserQuery): Promise<UserRead> {
  return withLdapClient(ldap, async (client, server) => {
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
    return { users, server };
  });
}
