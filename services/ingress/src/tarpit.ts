/**
 * The RCPT tarpit (ingress.tarpit): a pause before each RCPT reply once a
 * session has had `afterUnknownRecipients` unknown recipients, or for every
 * RCPT of a client in `networks`. Address harvesting (a dictionary of local
 * parts tried one after another) then costs the harvester time while a
 * sender with a typo loses a few seconds once; the unknown-recipient limit
 * still ends the session (session-guard.ts). Postfix has the same idea in
 * smtpd_error_sleep_time / smtpd_soft_error_limit (sleep before error
 * replies); this one counts unknown recipients only, and lets operators
 * slow listed networks from the first RCPT.
 *
 * Only the reply waits: the lookup is done, and the command timeout restarts
 * after the reply (so the pause never times the client out).
 */
import { cidrMatcher } from '@sluice/smtp-intake';

export interface TarpitConfig {
  /** Seconds before each slowed RCPT reply; 0: off. */
  delay: number;
  afterUnknownRecipients: number;
  networks: string[];
}

/** The pause (ms) before a RCPT reply, given the client and the unknown recipients before this one. */
export type TarpitDelay = (client: { ip: string; unknownBefore: number }) => number;

export function tarpitDelay(cfg: TarpitConfig): TarpitDelay {
  if (cfg.delay <= 0) return () => 0;
  const listed = cidrMatcher(cfg.networks, 'ingress.tarpit.networks');
  const ms = cfg.delay * 1000;
  return ({ ip, unknownBefore }) => (unknownBefore >= cfg.afterUnknownRecipients || listed(ip) ? ms : 0);
}
