/**
 * The SMTP answer to each authentication outcome (RFC 4954 §6, RFC 3463):
 *
 *   ok           235 2.7.0 (smtp-server's own reply)
 *   refused      535 5.7.8 the same text for an unknown user, a wrong or empty
 *                password and a foreign authorization identity: the answer
 *                must not tell an attacker which logins exist
 *   banned       454 4.7.0 (submission.auth.banReply 454: the session stays,
 *                AUTH is refused) or 421 4.7.0 (and the session is closed)
 *   throttled    454 4.7.0 whatever banReply says: too many failures for this
 *                user from everywhere (decision 0040) — a brake, not a ban,
 *                and never a closed session for its owner's client
 *   unavailable  454 4.7.0: neither the snapshot nor LDAP can answer; never
 *                535, which would make clients ask the user for a new password
 */

import type { AuthOutcome } from '@sluice/credentials';
import { SmtpError } from '@sluice/smtp';

export const authReplies = {
  refused: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  banned: { code: 454, enhanced: '4.7.0', text: 'Too many failed logins, try again later' },
  bannedClose: { code: 421, enhanced: '4.7.0', text: 'Too many failed logins, closing connection' },
  throttled: {
    code: 454,
    enhanced: '4.7.0',
    text: 'Too many failed logins for this account, try again later',
  },
  unavailable: { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure, try again later' },
} as const;

/** The error to answer AUTH with, or undefined for a successful login. */
export function authFailure(outcome: AuthOutcome, banReply: '454' | '421'): SmtpError | undefined {
  switch (outcome.kind) {
    case 'ok':
      return undefined;
    case 'refused':
      return new SmtpError(authReplies.refused);
    case 'banned':
      return new SmtpError(banReply === '421' ? authReplies.bannedClose : authReplies.banned);
    case 'throttled':
      return new SmtpError(authReplies.throttled);
    case 'unavailable':
      return new SmtpError(authReplies.unavailable);
  }
}
