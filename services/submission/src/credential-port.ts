/**
 * What the submission service needs of @sluice/credentials (the interface
 * agreed in issue 13): authenticate one login, answer ok / refused / banned /
 * unavailable. The credentials library (LDAP hashes in a KV snapshot,
 * brute-force bans shared by replicas) implements it; until it is merged,
 * `unavailableAuthenticator` stands in. TEMPORARY: it accepts nobody (every
 * AUTH gets 454 4.7.0), so a build without the library never lets mail out.
 */
export type AuthOutcome =
  | { kind: 'ok'; user: string }
  | { kind: 'refused' }
  | { kind: 'banned'; retryAfterSeconds: number }
  | { kind: 'unavailable' };

export interface AuthRequest {
  username: string;
  password: string;
  authzid?: string;
  clientIp: string;
}

export interface Authenticator {
  authenticate(req: AuthRequest): Promise<AuthOutcome>;
  close(): Promise<void>;
}

/** TEMPORARY stand-in until @sluice/credentials is merged: every login is "unavailable" (454). */
export const unavailableAuthenticator: Authenticator = {
  authenticate: async () => ({ kind: 'unavailable' }),
  close: async () => undefined,
};
