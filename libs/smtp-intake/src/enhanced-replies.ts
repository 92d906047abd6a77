/**
 * Our enhanced status codes on smtp-server's replies.
 *
 * With ENHANCEDSTATUSCODES advertised (RFC 2034), smtp-server prefixes every
 * reply with an RFC 3463 code it derives from the basic code alone: a handler
 * error with responseCode 554 goes out as "554 5.6.0", 550 as "550 5.1.1".
 * Sluice's refusals need their own (554 5.7.1 relay denied, 550 5.7.1 policy,
 * 452 4.3.1 queue full), and an SmtpError already leads its text with one.
 *
 * smtp-server has no option for this, so each connection's send() is wrapped
 * (an instance property, nothing global): a reply whose text begins with an
 * enhanced code of the same class is sent with that code and without the
 * derived one. Every other reply, smtp-server's own included, is unchanged.
 * Kept to this one small seam so an smtp-server upgrade has one place to check.
 */
import { splitEnhancedCode } from '@sluice/smtp';
import type { SMTPServer, SMTPServerSession } from 'smtp-server';

/** The part of smtp-server's SMTPConnection this module and the service use. */
export interface SmtpConnectionHandle {
  session: SMTPServerSession;
  send(code: number, data?: string | string[] | null, context?: string | false): void;
  close(): void;
}

const wrapped = new WeakSet<object>();

/** Find the connection that owns `session` (smtp-server keeps them in `server.connections`). */
export function connectionOf(
  server: SMTPServer,
  session: SMTPServerSession,
): SmtpConnectionHandle | undefined {
  for (const c of server.connections as Set<unknown> as Set<SmtpConnectionHandle>) {
    if (c.session === session) return c;
  }
  return undefined;
}

/** Wrap the connection's send() once so texts led by an enhanced code keep that code. */
export function useOwnEnhancedCodes(conn: SmtpConnectionHandle): void {
  if (wrapped.has(conn)) return;
  wrapped.add(conn);
  const send = conn.send.bind(conn);
  conn.send = (code, data, context) => {
    if (code === 530 && typeof data === 'string' && data.startsWith('REQUIRETLS')) {
      // smtp-server refuses MAIL FROM REQUIRETLS outside TLS (RFC 8689 §2) as 5.7.0; it is "encryption needed".
      return send(530, `5.7.10 ${data}`, false);
    }
    if (typeof data === 'string' && context !== false) {
      const own = splitEnhancedCode(data);
      // RFC 3463 §2: the class must match the reply's first digit; otherwise leave it to smtp-server.
      if (own && own.enhanced[0] === String(code)[0]) return send(code, data, false);
    }
    return send(code, data, context);
  };
}
