/**
 * TLS before AUTH on one smtp-server connection (RFC 6409 §4.3 leaves
 * authentication to the service; RFC 4954 §4 forbids plaintext mechanisms
 * over an unprotected channel; RFC 3207 §4 and RFC 8314 §3 want TLS first):
 *
 * - AUTH before STARTTLS gets "530 5.7.0 Must issue a STARTTLS command
 *   first" (RFC 3207 §4). smtp-server would answer 538, RFC 4954's code for
 *   "encryption required for this mechanism", which clients show less clearly.
 * - Before TLS the EHLO reply does not offer AUTH at all, so a client is not
 *   tempted to send a password in clear.
 *
 * Done at the two seams decision 0020 allows: the connection's own handler
 * and send(), wrapped per instance.
 */
import type { SmtpConnectionHandle } from '@sluice/smtp-intake';

interface AuthConnection extends SmtpConnectionHandle {
  secure: boolean;
  handler_AUTH(command: Buffer, callback: () => void): void;
}

export const STARTTLS_FIRST = '5.7.0 Must issue a STARTTLS command first';

/** `onRefused`: called for each AUTH refused for want of TLS (counted as an auth outcome). */
export function requireTlsForAuth(conn: SmtpConnectionHandle, onRefused: () => void = () => {}): void {
  const c = conn as AuthConnection;
  const handle = c.handler_AUTH.bind(c);
  c.handler_AUTH = (command, callback) => {
    if (!c.secure) {
      onRefused();
      c.send(530, STARTTLS_FIRST);
      return callback();
    }
    handle(command, callback);
  };
  const send = c.send.bind(c);
  c.send = (code, data, context) => {
    if (code === 250 && Array.isArray(data) && !c.secure) {
      return send(
        code,
        data.filter((line) => !/^AUTH\b/i.test(line)),
        context,
      );
    }
    return send(code, data, context);
  };
}
