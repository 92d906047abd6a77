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
 * (tls-certificate.ts), content checks in message-reader.ts (all in
 * libs/smtp-intake); sessions per IP per minute shared by replicas through
 * JetStream KV (session-rate.ts, decision 0034) and the RCPT tarpit
 * (tarpit.ts) here.
 */
import type { Socket } from 'node:net';
import { srsDomainOf } from '@sluice/config';
import { subjects } from '@sluice/proto';
import {
  type RunningService,
  reusePortFor,
  type ServiceContext,
  type ServiceDefinition,
} from '@sluice/runtime';
import { parseReversePath } from '@sluice/smtp';
import {
  acceptQuotedLocalParts,
  assertBodyBudget,
  BodyBudget,
  ConnectionLimits,
  certificateFiles,
  cidrMatcher,
  connectionsOf,
  createFront,
  drainSessions,
  type IntakeDeps,
  type Listening,
  listenAll,
  mailFromRefusal,
  orcptRefusal,
  plainIp,
  rcptParameterRefusal,
  receiveMessage,
  SessionGuard,
  SessionHandoff,
  type SmtpConnectionHandle,
  sessionRefusals,
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
import { sessionRateCheck } from './session-rate.ts';
import { tarpitDelay } from './tarpit.ts';

interface SessionState {
  conn?: SmtpConnectionHandle;
  guard?: SessionGuard;
  /** DATA is being received or processed. */
  inData: boolean;
  /** Unknown recipients so far (550 from the lookup), for the tarpit. */
  unknown?: number;
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
    assertBodyBudget('ingress.maxBodyBytesInFlight', ing.maxBodyBytesInFlight, bus.inlineLimit);
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
    // 421 during a stop (RFC 5321 §3.8), and one way to refuse a command: counted and logged.
    const { refuse, say421 } = sessionRefusals('ingress', metrics, log);

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
    // Sessions per IP per minute, shared by replicas (decision 0034); off at 0.
    const admitRate = sessionRateCheck({
      limit: ing.limits.sessionsPerMinute,
      count: (key) => bus.countIngressSession(key),
      onError: (err) => log.warn({ err }, 'session rate not counted (KV error): session admitted'),
    });
    const tarpit = tarpitDelay(ing.tarpit);
    const sessionLimits = {
      softErrors: ing.limits.softErrors,
      hardErrors: ing.limits.hardErrors,
      unknownRecipients: ing.limits.unknownRecipients,
      commandTimeoutMs: ing.limits.commandTimeout * 1000,
      dataTimeoutMs: (ing.limits.dataTimeout + ing.filterTimeout + config.bus.publishTimeout) * 1000,
      maxSessionMs: ing.limits.maxSessionTime * 1000,
    };
    const handoff = new SessionHandoff();

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
        // RFC 8689 §2: advertised after STARTTLS only (smtp-server's default hides it).
        hideREQUIRETLS: false,
        size: ing.maxMessageBytes,
        maxRecipients: ing.maxRecipients,
        // Admission is the front's (smtp-front.ts): total, per IP, per network.
        maxClients: ing.maxClients + 1,
        socketTimeout: ing.socketTimeout * 1000,
        // In-flight transactions may need the filter's wait plus a PubAck before they can answer.
        closeTimeout: (ing.filterTimeout + config.bus.publishTimeout + 5) * 1000,
        disableReverseLookup: true,

        onConnect(session, cb) {
          const conn = handoff.take(session.id);
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
          handoff.closed(session.id);
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
          const detail = { session: session.id, mailFrom: redact.address(address.address) };
          const refusal = mailFromRefusal(address, {
            smtputf8: session.envelope.smtpUtf8 === true,
            inlineLimit: bus.inlineLimit,
            budget,
          });
          if (refusal) return refuse(cb, refusal.error, refusal.reason, detail);
          cb();
        },

        onRcptTo(address: SMTPServerAddress, session, done) {
          const state = sessions.get(session);
          const pause = tarpit({ ip: clientIpOf(session.remoteAddress), unknownBefore: state?.unknown ?? 0 });
          const cb =
            pause > 0 ? (err?: Error | null) => void setTimeout(() => done(err), pause).unref() : done;
          const detail = { session: session.id, rcpt: redact.address(address.address) };
          const check = checkRecipient(address.address, rcptDomains, {
            smtputf8: session.envelope.smtpUtf8 === true,
          });
          const badParameter = rcptParameterRefusal(address);
          if (badParameter) return refuse(cb, badParameter.error, badParameter.reason, detail);
          if (check.kind === 'refuse') return refuse(cb, check.error, check.reason, detail);
          const badOrcpt = orcptRefusal(address);
          if (badOrcpt) return refuse(cb, badOrcpt.error, badOrcpt.reason, detail);
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
                if (decision.error.code >= 500 && state) {
                  state.guard?.noteUnknownRecipient();
                  state.unknown = (state.unknown ?? 0) + 1;
                }
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
    let listening: Listening<{ host: string; port: number }>;
    try {
      listening = await listenAll(
        'ingress',
        ing.listen,
        () => {
          const server = makeServer();
          servers.push(server);
          return createFront(server, {
            hostname: config.hostname,
            limits,
            greetDelayMs: ing.greetDelay * 1000,
            trusted,
            proxyFrom,
            proxyTimeoutMs: 10_000,
            draining: () => stopping,
            admitRate,
            onRefused: (reason, ip) => {
              metrics.rejected.inc({ stage: 'ingress', reason });
              log.info({ client: redact.ip(ip), reason }, 'connection refused');
            },
            onSession: handoff.onSession,
          });
        },
        { reusePort: reusePortFor(config) },
      );
    } catch (err) {
      certificate?.close();
      throw err;
    }
    const bound = listening.bound;

    return {
      name: 'ingress',
      info: () => ({ ports: bound.map((b) => b.port), listen: bound, bodyBytesInFlight: budget.used }),
      async stop() {
        // Drain (RFC 5321 §3.8): new sessions get 421 4.3.2 from the front, idle sessions
        // now; sessions in a transaction finish it and get 421 after their reply. After
        // ingress.drainTimeout the rest are cut.
        stopping = true;
        await drainSessions({
          connections: () => connectionsOf(servers),
          busy: (c) => Boolean(c.session.envelope?.mailFrom || sessions.get(c.session)?.inData),
          say421,
          timeoutMs: ing.drainTimeout * 1000,
        });
        certificate?.close();
        await listening.close();
      },
    };
  },
};
