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
 * Hardening (issue 10, decision 0020): our own listener in front of
 * smtp-server (smtp-front.ts: PROXY v1/v2, per-IP limits, drain, greeting
 * delay), a guard per session (session-guard.ts: pipelining, error and
 * unknown-recipient limits, timeouts), STARTTLS from reloaded files
 * (tls-certificate.ts), content checks in message-reader.ts.
 */
import type { AddressInfo, Server, Socket } from 'node:net';
import { STREAM_BUFFER_BYTES } from '@sluice/bus';
import { srsDomainOf } from '@sluice/config';
import { subjects } from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { parseReversePath, type SmtpError, smtpError } from '@sluice/smtp';
import {
  acceptQuotedLocalParts,
  BodyBudget,
  ConnectionLimits,
  certificateFiles,
  cidrMatcher,
  createFront,
  type IntakeDeps,
  plainIp,
  receiveMessage,
  SessionGuard,
  type SmtpConnectionHandle,
  type TransactionContext,
  useOwnEnhancedCodes,
  watchCertificate,
} from '@sluice/smtp-intake';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import {
  checkRecipient,
  encodeLookupRequest,
  lookupDecision,
  type OurDomains,
  ourDomains,
} from './recipient-policy.ts';

/**
 * The MAIL and RCPT parameters of the extensions we advertise: SIZE (RFC 1870),
 * BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID and NOTIFY/ORCPT (RFC 3461).
 * Anything else: 555 5.5.4 (RFC 5321 §4.1.1.11).
 */
const MAIL_PARAMS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID']);
const RCPT_PARAMS = new Set(['NOTIFY', 'ORCPT']);
const unknownParam = (args: false | Record<string, unknown> | undefined, known: Set<string>) =>
  args ? Object.keys(args).find((k) => !known.has(k.toUpperCase())) : undefined;

/** RFC 3461 §4.4: ENVID is at most 100 characters; §4.2: ORCPT at most 500. */
const MAX_ENVID = 100;
const MAX_ORCPT = 500;
/** About the most smtp-server hands over in one chunk (a socket read, plus what it carried over): a body may hold up to two past the inline limit. */
const MAX_SOCKET_READ = 64 * 1024;

interface SessionState {
  conn?: SmtpConnectionHandle;
  guard?: SessionGuard;
  /** DATA is being received or processed. */
  inData: boolean;
}

/** The client IP as written in envelopes and headers (IPv4-mapped IPv6 becomes IPv4). */
export function clientIpOf(remoteAddress: string): string {
  return plainIp(remoteAddress);
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

    const tlsFiles = certificateFiles(ing.tls, config.hostname);
    const certificate = tlsFiles
      ? watchCertificate(
          tlsFiles,
          (pair) => {
            for (const s of servers) s.updateSecureContext({ ...pair });
            log.info({ certFile: tlsFiles.certFile }, 'STARTTLS certificate reloaded');
          },
          (err) => log.warn({ err, certFile: tlsFiles.certFile }, 'STARTTLS certificate not reloaded'),
        )
      : undefined;
    const trusted = cidrMatcher(ing.trustedNetworks, 'ingress.trustedNetworks');
    const proxyFrom = cidrMatcher(ing.proxyFrom, 'ingress.proxyFrom');
    const limits = new ConnectionLimits(
      { total: ing.maxClients, perIp: ing.limits.perIp, perNet: ing.limits.perNet },
      trusted,
    );
    const sessionLimits = {
      softErrors: ing.limits.softErrors,
      hardErrors: ing.limits.hardErrors,
      unknownRecipients: ing.limits.unknownRecipients,
      commandTimeoutMs: ing.limits.commandTimeout * 1000,
      dataTimeoutMs: (ing.limits.dataTimeout + ing.filterTimeout + config.bus.publishTimeout) * 1000,
      maxSessionMs: ing.limits.maxSessionTime * 1000,
    };
    /** smtp-server's connection of a session, set up by the front before onConnect. */
    const pendingConns = new Map<string, SmtpConnectionHandle>();
    /** Admission slots by session id: freed when smtp-server closes the session (after STARTTLS the raw socket may never report its close). */
    const slots = new Map<string, () => void>();

    const makeServer = (): SMTPServer => {
      const server: SMTPServer = new SMTPServer({
        name: config.hostname,
        banner: 'Sluice',
        logger: false,
        // MX: no AUTH here (submission is a separate service); STARTTLS only with a certificate.
        disabledCommands: tlsFiles ? ['AUTH'] : ['AUTH', 'STARTTLS'],
        ...(certificate ? { ...certificate.current(), minVersion: 'TLSv1.2' as const } : {}),
        authOptional: true,
        hideENHANCEDSTATUSCODES: false,
        hideDSN: false,
        size: ing.maxMessageBytes,
        maxRecipients: ing.maxRecipients,
        // Admission is the front's (smtp-front.ts): total, per IP, per network.
        maxClients: ing.maxClients + 1,
        socketTimeout: ing.socketTimeout * 1000,
        // In-flight transactions may need the filter's wait plus a PubAck before they can answer.
        closeTimeout: (ing.filterTimeout + config.bus.publishTimeout + 5) * 1000,
        disableReverseLookup: true,

        onConnect(session, cb) {
          const conn = pendingConns.get(session.id);
          pendingConns.delete(session.id);
          const state: SessionState = { conn, inData: false };
          if (conn) {
            useOwnEnhancedCodes(conn);
            acceptQuotedLocalParts(conn);
            state.guard = new SessionGuard(conn, sessionLimits, (event) => {
              metrics.rejected.inc({ stage: 'ingress', reason: event });
              log.info(
                { session: session.id, client: redact.ip(clientIpOf(session.remoteAddress)), reason: event },
                'session ended by policy',
              );
            });
          }
          sessions.set(session, state);
          metrics.smtpSessions.inc({ service: 'ingress' });
          log.debug({ client: redact.ip(clientIpOf(session.remoteAddress)), session: session.id }, 'connect');
          cb();
        },

        onClose(session) {
          slots.get(session.id)?.();
          slots.delete(session.id);
          pendingConns.delete(session.id);
          sessions.get(session)?.guard?.stop();
        },

        onSecure(_socket, session, cb) {
          // After STARTTLS the guard watches the TLS socket (the session starts over).
          const state = sessions.get(session);
          const conn = state?.conn as (SmtpConnectionHandle & { _socket?: Socket }) | undefined;
          if (state?.guard && conn?._socket) state.guard.secured(conn._socket);
          cb();
        },

        onMailFrom(address: SMTPServerAddress, session, cb) {
          const from = parseReversePath(address.address, { smtputf8: session.envelope.smtpUtf8 === true });
          const detail = { session: session.id, mailFrom: redact.address(address.address) };
          const unknownMail = unknownParam(address.args, MAIL_PARAMS);
          if (unknownMail) {
            return refuse(
              cb,
              smtpError('unknownParameter', `Unsupported parameter ${unknownMail.slice(0, 32)}`),
              'unknown-parameter',
              detail,
            );
          }
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
          const unknownRcpt = unknownParam(address.args, RCPT_PARAMS);
          if (unknownRcpt) {
            return refuse(
              cb,
              smtpError('unknownParameter', `Unsupported parameter ${unknownRcpt.slice(0, 32)}`),
              'unknown-parameter',
              detail,
            );
          }
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
              if (decision.kind === 'refuse') {
                if (decision.error.code >= 500) sessions.get(session)?.guard?.noteUnknownRecipient();
                refuse(cb, decision.error, decision.reason, detail);
              } else cb();
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
    const fronts: Server[] = [];
    const bound: Array<{ host: string; port: number }> = [];
    const closeFronts = () => Promise.all(fronts.map((f) => new Promise<void>((r) => f.close(() => r()))));
    try {
      for (const l of ing.listen) {
        const server = makeServer();
        servers.push(server);
        const front = createFront(server, {
          hostname: config.hostname,
          limits,
          greetDelayMs: ing.greetDelay * 1000,
          trusted,
          proxyFrom,
          proxyTimeoutMs: 10_000,
          draining: () => stopping,
          onRefused: (reason, ip) => {
            metrics.rejected.inc({ stage: 'ingress', reason });
            log.info({ client: redact.ip(ip), reason }, 'connection refused');
          },
          onSession: (conn, release) => {
            const c = conn as SmtpConnectionHandle & { id: string };
            pendingConns.set(c.id, c);
            slots.set(c.id, release);
          },
        });
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) =>
            reject(new Error(`ingress cannot listen on ${l.host}:${l.port}: ${err.message}`));
          front.once('error', onError);
          front.listen(l.port, l.host, () => {
            front.off('error', onError);
            resolve();
          });
        });
        fronts.push(front);
        bound.push({ host: l.host, port: (front.address() as AddressInfo).port });
      }
    } catch (err) {
      await closeFronts();
      certificate?.close();
      throw err;
    }
    const allConnections = () =>
      servers.flatMap((s) => [...(s.connections as Set<unknown> as Set<SmtpConnectionHandle>)]);

    return {
      name: 'ingress',
      info: () => ({ ports: bound.map((b) => b.port), listen: bound, bodyBytesInFlight: budget.used }),
      async stop() {
        // Drain (RFC 5321 §3.8): new sessions get 421 4.3.2 from the front, idle sessions
        // now; sessions in a transaction finish it and get 421 after their reply. After
        // ingress.drainTimeout the rest are cut.
        stopping = true;
        for (const c of allConnections()) {
          const busy = c.session.envelope?.mailFrom || sessions.get(c.session)?.inData;
          if (!busy) say421(c);
        }
        const deadline = Date.now() + ing.drainTimeout * 1000;
        while (allConnections().length > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        for (const c of allConnections()) {
          say421(c);
          c.close();
        }
        certificate?.close();
        await closeFronts();
      },
    };
  },
};
