/**
 * The two ways an SMTP door (the MX, the submission service) turns a client
 * away, shared so both count and log them the same way:
 *   - refuse: answer one command with its SmtpError, count it in
 *     sluice_messages_rejected_total{stage,reason} and log it at info with
 *     the reply and the caller's detail (never a password: callers pass
 *     addresses and ids only);
 *   - say421: during a stop, 421 4.3.2 and close (RFC 5321 §3.8; smtp-server
 *     closes the connection after any 421 it sends).
 */
import type { Logger } from '@sluice/log';
import { type SmtpError, smtpError } from '@sluice/smtp';
import type { Metrics } from '@sluice/telemetry';
import type { SmtpConnectionHandle } from './enhanced-replies.ts';

export interface SessionRefusals {
  refuse(cb: (err?: Error | null) => void, error: SmtpError, reason: string, detail: object): void;
  say421(conn: SmtpConnectionHandle | undefined): void;
}

export function sessionRefusals(
  stage: 'ingress' | 'submission',
  metrics: Pick<Metrics, 'rejected'>,
  log: Pick<Logger, 'info'>,
): SessionRefusals {
  const shuttingDown = smtpError('shuttingDown');
  return {
    refuse(cb, error, reason, detail) {
      metrics.rejected.inc({ stage, reason });
      log.info({ ...detail, reason, reply: error.line }, 'refused');
      cb(error);
    },
    say421(conn) {
      conn?.send(shuttingDown.code, shuttingDown.message);
    },
  };
}
