/**
 * The ingress: Sluice's MX. Listens for SMTP on every `ingress.listen`
 * address, refuses in-session what it will not take (relay, unknown users,
 * oversize, bare line ends, the filter's rejects), and answers 250 only once
 * the message is stored in the resolve stream.
 *
 * TRUST: faces the internet: every byte from the client is hostile until
 * checked. Accepts no AUTH (that is the submission service) and relays
 * nothing: RCPT must be one of our domains and known to the resolver.
 * Publishes only to subjects.resolve; asks the resolver (RCPT) and the filter
 * (after DATA) over request/reply.
 *
 * STANDARDS: RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531
 * (SMTPUTF8), RFC 2920 (PIPELINING), RFC 2034 / RFC 3463 (enhanced status
 * codes), RFC 3461 (DSN parameters carried for the egress), RFC 3848
 * (Received protocol keywords).
 *
 * Not yet: STARTTLS (needs certificate config), PROXY protocol, per-IP limits.
 */
import type { AddressInfo } from 'node:net';
import { STREAM_BUFFER_BYTES } from '@sluice/bus';
import { srsDomainOf } from '@sluice/config';
import { subjects } from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { parseReversePath, type SmtpError, smtpError } from '@sluice/smtp';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import { BodyBudget } from './body-budget.ts';
import { connectionOf, type SmtpConnectionHandle, useOwnEnhancedCodes } from './enhanced-replies.ts';
import { type IntakeDeps, receiveMessage, type TransactionContext } from './message-intake.ts';
import {
  checkRecipient,
  encodeLookupRequest,
  lookupDecision,
  type OurDomains,
  ourDomains,
} from './recipient-policy.ts';

/** RFC 3461 §4.4: ENVID is at most 100 characters; §4.2: ORCPT at most 500. */
const MAX_ENVID = 100;
const MAX_ORCPT = 500;
/** About the most smtp-server hands over in one chunk (a socket read, plus what it carried over): a body may hold up to two past the inline limit. */
const MAX_SOCKET_READ = 64 * 1024;

interface SessionState {
  conn?: SmtpConnectionHandle;
  /** DATA is being received or processed. */
  inData: boolean;
}

/** The client IP as written in envelopes and headers (IPv4-mapped IPv6 becomes IPv4). */
export function clientIpOf(remoteAddress: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
  return m ? m[1]! : remoteAddress;
}

/** What a DATA handler needs from the smtp-server session, in envelope terms. */
export function transactionOf(session: SMTPServerSession, domains: OurDomains): TransactionContext {
  const env = session.envelope;
  const smtputf8 = env.smtpUtf8 === true;
  const from = env.mailFrom ? env.mailFrom.address : '';
  const parsedFrom = parseReversePath(from, { smtputf8 });
  const recipients = env.rcptTo.map((r) => {
    const check = checkRecipient(r.address, domains, { smtputf8 });
    // Every recipient passed checkRecipient at RCPT time; the canonical form is the one we route on.
    const address = check.kind === 'lookup' ? check.mailbox.address : r.address;
    return { address, original: r.address, notify: r.dsn?.notify, orcpt: r.dsn?.orcpt };
  });
  const tls = session.tlsOptions
    ? { protocol: session.tlsOptions.version, cipher: session.tlsOptions.name }
    : undefined;
  return {
    client: {
      ip: clientIpOf(session.remoteAddress),
      port: session.remotePort,
      helo: session.hostNameAppearsAs || '',
      ...(tls ? { tls } : {}),
    },
    ehlo: session.openingCommand !== 'HELO',
    mailFrom: parsedFrom.ok && !parsedFrom.nullSender ? parsedFrom.mailbox.address : '',
    mailParams: (env.mailFrom ? env.mailFrom.args : false) || {},
    smtputf8,
    recipients,
  };
}

export const ingressService: ServiceDefinition = {
  name: 'ingress',
  async start(ctx: ServiceContext): Promise<RunningService> {
    const { config, bus, log, metrics, redact } = ctx;
    const ing = config.ingress;
    const domains = ourDomains(config.domains.primary, config.domains.aliases);
    // RCPT also takes the SRS domain (bounces to forwarded mail); the resolver decides.
    const srsDomain = srsDomainOf(config);
    const rcptDomains = srsDomain
      ? ourDomains(config.domains.primary, [...config.domains.aliases, srsDomain])
      : domains;
    const sessions = new WeakMap<SMTPServerSession, SessionState>();
    // A body at the inline limit (with the socket read that crosses it), then streaming, must fit:
    // with less, some mail would get 452 forever.
    const smallestBudget = bus.inlineLimit + 2 * MAX_SOCKET_READ + STREAM_BUFFER_BYTES;
    if (ing.maxBodyBytesInFlight < smallestBudget) {
      throw new Error(
        `ingress.maxBodyBytesInFlight (${ing.maxBodyBytesInFlight}) is below ${smallestBudget} (the inline body limit, bus.inlineMaxBytes, plus ${2 * MAX_SOCKET_READ + STREAM_BUFFER_BYTES} for a body streaming into the object store): raise ingress.maxBodyBytesInFlight`,
      );
    }
    const budget = new BodyBudget(ing.maxBodyBytesInFlight);
    const intakeDeps: IntakeDeps = {
      bus,
      log,
      metrics,
      redact,
      instance: ctx.instance,
      hostname: config.hostname,
      maxMessageBytes: ing.maxMessageBytes,
      filterTimeoutMs: ing.filterTimeout * 1000,
      budget,
    };

    let stopping = false;
    const shuttingDown = smtpError('shuttingDown');
    /** RFC 5321 §3.8: 421 and close; smtp-server closes the connection after any 421 it sends. */
    const say421 = (conn: SmtpConnectionHandle | undefined) =>
      conn?.send(shuttingDown.code, shuttingDown.message);

    const refuse = (cb: (err?: Error | null) => void, error: SmtpError, reason: string, detail: object) => {
      metrics.rejected.inc({ stage: 'ingress', reason });
      log.info({ ...detail, reason, reply: error.line }, 'refused');
      cb(error);
    };

    const makeServer = (): SMTPServer => {
      const server: SMTPServer = new SMTPServer({
        name: config.hostname,
        banner: 'Sluice',
        logger: false,
        // MX: no AUTH here (submission is a separate service); STARTTLS needs certificates (not configured yet).
        disabledCommands: ['AUTH', 'STARTTLS'],
        authOptional: true,
        hideENHANCEDSTATUSCODES: false,
        hideDSN: false,
        size: ing.maxMessageBytes,
        maxRecipients: ing.maxRecipients,
        maxClients: ing.maxClients,
        socketTimeout: ing.socketTimeout * 1000,
        // In-flight transactions may need the filter's wait plus a PubAck before they can answer.
        closeTimeout: (ing.filterTimeout + config.bus.publishTimeout + 5) * 1000,
        disableReverseLookup: true,

        onConnect(session, cb) {
          const conn = connectionOf(server, session);
          if (conn) useOwnEnhancedCodes(conn);
          sessions.set(session, { conn, inData: false });
          metrics.smtpSessions.inc({ service: 'ingress' });
          log.debug({ client: redact.ip(clientIpOf(session.remoteAddress)), session: session.id }, 'connect');
          cb();
        },

        onMailFrom(address: SMTPServerAddress, session, cb) {
          const from = parseReversePath(address.address, { smtputf8: session.envelope.smtpUtf8 === true });
          const detail = { session: session.id, mailFrom: redact.address(address.address) };
          if (!from.ok) return refuse(cb, smtpError('badSenderSyntax'), 'sender-syntax', detail);
          const envid = address.args ? address.args['ENVID'] : undefined;
          if (typeof envid === 'string' && envid.length > MAX_ENVID) {
            return refuse(
              cb,
              smtpError('badParameter', 'ENVID longer than 100 characters'),
              'bad-parameter',
              detail,
            );
          }
          // RFC 1870 §6.1: a declared SIZE we cannot hold now gets 452 before any data is sent.
          // A body over the inline limit streams to the object store: it needs the store's buffer.
          const declared = Number(address.args ? address.args['SIZE'] : undefined);
          const needs = declared > bus.inlineLimit ? STREAM_BUFFER_BYTES : declared;
          if (declared > 0 && needs > budget.available) {
            return refuse(cb, smtpError('bodiesInFlightFull'), 'over-budget', detail);
          }
          cb();
        },

        onRcptTo(address: SMTPServerAddress, session, cb) {
          const detail = { session: session.id, rcpt: redact.address(address.address) };
          const check = checkRecipient(address.address, rcptDomains, {
            smtputf8: session.envelope.smtpUtf8 === true,
          });
          if (check.kind === 'refuse') return refuse(cb, check.error, check.reason, detail);
          if ((address.dsn?.orcpt?.length ?? 0) > MAX_ORCPT) {
            return refuse(
              cb,
              smtpError('badParameter', 'ORCPT longer than 500 characters'),
              'bad-parameter',
              detail,
            );
          }
          bus
            .request(
              subjects.resolverLookup,
              encodeLookupRequest(
                check.mailbox.address,
                session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
              ),
              ing.lookupTimeout * 1000,
            )
            .then(
              (data) => lookupDecision({ data }),
              (error: unknown) => {
                log.warn({ err: error, ...detail }, 'recipient lookup failed');
                return lookupDecision({ error });
              },
            )
            .then((decision) => {
              if (decision.kind === 'refuse') refuse(cb, decision.error, decision.reason, detail);
              else cb();
            });
        },

        onData(stream: SMTPServerDataStream, session, cb) {
          const state = sessions.get(session) ?? { inData: false };
          state.inData = true;
          const tx = transactionOf(session, domains);
          const started = performance.now();
          receiveMessage(intakeDeps, tx, stream).then((result) => {
            state.inData = false;
            metrics.stageDuration.observe({ stage: 'ingress' }, (performance.now() - started) / 1000);
            const detail = {
              session: session.id,
              client: redact.ip(tx.client.ip),
              mailFrom: redact.address(tx.mailFrom),
              rcpts: tx.recipients.length,
              ...result.trace,
            };
            if (result.ok) {
              metrics.received.inc({ source: 'mx' });
              log.info({ ...detail, queueId: result.queueId, duplicate: result.duplicate }, 'accepted');
              cb(null, result.text);
            } else {
              refuse(cb, result.error, result.reason, { ...detail, queueId: result.queueId });
            }
            if (!result.ok && result.disconnect) {
              // Postfix smtpd_forbid_bare_newline: after a bare line end, the client's framing cannot be trusted.
              state.conn?.close();
            } else if (stopping) {
              // Draining: the transaction in flight is answered; do not wait for the client's next command.
              say421(state.conn);
            }
          });
        },
      });
      server.on('error', (err) => log.debug({ err }, 'smtp connection error'));
      return server;
    };

    const servers: SMTPServer[] = [];
    const bound: Array<{ host: string; port: number }> = [];
    try {
      for (const l of ing.listen) {
        const server = makeServer();
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) =>
            reject(new Error(`ingress cannot listen on ${l.host}:${l.port}: ${err.message}`));
          server.server.once('error', onError);
          server.listen(l.port, l.host, () => {
            server.server.off('error', onError);
            resolve();
          });
        });
        servers.push(server);
        bound.push({ host: l.host, port: (server.server.address() as AddressInfo).port });
      }
    } catch (err) {
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      throw err;
    }

    return {
      name: 'ingress',
      info: () => ({ ports: bound.map((b) => b.port), listen: bound, bodyBytesInFlight: budget.used }),
      async stop() {
        // Stop accepting; idle sessions get 421 now; sessions in a transaction finish it and
        // get 421 after their reply (or from smtp-server at closeTimeout, if the client stalls).
        stopping = true;
        await Promise.all(
          servers.map(
            (server) =>
              new Promise<void>((resolve) => {
                server.close(() => resolve());
                for (const c of server.connections as Set<unknown> as Set<SmtpConnectionHandle>) {
                  const busy = c.session.envelope?.mailFrom || sessions.get(c.session)?.inData;
                  if (!busy) say421(c);
                }
              }),
          ),
        );
      },
    };
  },
};
