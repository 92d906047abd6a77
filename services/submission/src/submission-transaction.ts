/**
 * What one submission transaction hands the shared message path
 * (@sluice/smtp-intake receiveMessage) when DATA starts: the client (with the
 * relay client's verified certificate), the authenticated identity
 * (client.auth: the login and mechanism, or relay:<name> by x509), MAIL FROM
 * and recipients in canonical form, and the header check after DATA: every
 * From address must pass the session's sender rule (550 5.7.1 otherwise; a
 * message without a readable From is refused too, RFC 5322 §3.6 requires one).
 */
import type { PeerCertificate } from '@sluice/proto';
import { parseMailbox, parseReversePath, SmtpError } from '@sluice/smtp';
import { plainIp, type TransactionContext } from '@sluice/smtp-intake';
import type { SMTPServerSession } from 'smtp-server';
import { fromAddresses } from './header-from.ts';
import type { SenderDecision } from './sender-rules.ts';

export interface SubmissionSessionFacts {
  /** The relay client of an mTLS session. */
  relay?: { name: string };
  peer?: PeerCertificate;
  /** AUTH mechanism of a person's session. */
  method?: string;
}

export function submissionTransaction(
  session: SMTPServerSession,
  facts: SubmissionSessionFacts,
  checkAuthor: (address: string) => Promise<SenderDecision>,
): TransactionContext {
  const env = session.envelope;
  const smtputf8 = env.smtpUtf8 === true;
  const from = parseReversePath(env.mailFrom ? env.mailFrom.address : '', { smtputf8 });
  const recipients = env.rcptTo.map((r) => {
    const m = parseMailbox(r.address, { smtputf8 });
    return {
      address: m.ok ? m.mailbox.address : r.address,
      original: r.address,
      notify: r.dsn?.notify,
      orcpt: r.dsn?.orcpt,
    };
  });
  const tls = session.tlsOptions
    ? {
        protocol: session.tlsOptions.version,
        cipher: session.tlsOptions.name,
        ...(facts.peer ? { clientCertificate: facts.peer } : {}),
      }
    : undefined;
  const auth = facts.relay
    ? { user: `relay:${facts.relay.name}`, method: 'x509' }
    : { user: String(session.user ?? ''), method: facts.method ?? 'PLAIN' };
  return {
    client: {
      ip: plainIp(session.remoteAddress),
      port: session.remotePort,
      helo: session.hostNameAppearsAs || '',
      ...(tls ? { tls } : {}),
    },
    ehlo: session.openingCommand !== 'HELO',
    mailFrom: from.ok && !from.nullSender ? from.mailbox.address : '',
    mailParams: (env.mailFrom ? env.mailFrom.args : false) || {},
    smtputf8,
    recipients,
    auth,
    checkHead: async (head) => {
      const authors = fromAddresses(head);
      if (!authors.ok) {
        const text = authors.why === 'none' ? 'Message has no From header' : 'From header cannot be read';
        return {
          error: new SmtpError({ code: 550, enhanced: '5.7.1', text }),
          reason: `from-${authors.why}`,
        };
      }
      for (const a of authors.addresses) {
        const d = await checkAuthor(a);
        if (!d.ok) return { error: d.error, reason: d.reason };
      }
      return undefined;
    },
  };
}
