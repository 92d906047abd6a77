/**
 * Sessions per client IP per minute (ingress.limits.sessionsPerMinute),
 * counted across every MX replica in a JetStream KV bucket (decision 0034):
 * each new session adds one to the key of its client and the current minute
 * (compare-and-set, libs/bus session-rate-store.ts); over the limit the
 * session gets 421 4.7.0 before the greeting (RFC 5321 §3.8). Postfix does the
 * same per smtpd host with anvil (smtpd_client_connection_rate_limit, one
 * minute windows); ours holds for the whole MX however the load balancer
 * spreads a client.
 *
 * Windows are calendar minutes (fixed windows, as anvil's time unit): a client
 * may open up to twice the limit across a minute boundary. A KV error admits
 * the session (a counter that cannot be read must not stop the mail; the
 * error is reported); every compare-and-set round lost to other sessions of
 * the same client means a flood, and is refused.
 */
import { SessionCountContended } from '@sluice/bus';
import { replies, type SmtpReply } from '@sluice/smtp';

/** The counter key of `ip` in the minute of `nowMs`: KV-safe (IPv6 colons become underscores). */
export function sessionRateKey(ip: string, nowMs: number): string {
  return `${ip.toLowerCase().replace(/[^0-9a-f.]/g, '_')}.m${Math.floor(nowMs / 60_000)}`;
}

export interface SessionRateOptions {
  /** Sessions per IP per minute; 0: no limit (no check is made). */
  limit: number;
  /** Add one session to a key, the count after it (Bus.countIngressSession). */
  count: (key: string) => Promise<number>;
  /** A KV error: the session was admitted without being counted. */
  onError: (err: unknown) => void;
  now?: () => number;
}

/** The front's `admitRate` hook, or undefined when the limit is off. */
export function sessionRateCheck(
  o: SessionRateOptions,
): ((ip: string) => Promise<SmtpReply | undefined>) | undefined {
  if (o.limit <= 0) return undefined;
  const now = o.now ?? Date.now;
  return async (ip) => {
    try {
      const n = await o.count(sessionRateKey(ip, now()));
      return n > o.limit ? replies.tooManySessions : undefined;
    } catch (err) {
      if (err instanceof SessionCountContended) return replies.tooManySessions;
      o.onError(err);
      return undefined;
    }
  };
}
