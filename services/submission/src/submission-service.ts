/**
 * The submission service (issue 13, docs/submission.md): authenticated
 * sending for people and machines, joining the same pipeline as MX mail.
 *
 * Three kinds of listener ("doors"), all on the shared SMTP intake
 * (@sluice/smtp-intake: our front, session guard, certificates, the message
 * path into the resolve stream):
 *
 *   starttls  587, RFC 6409: STARTTLS before AUTH (530 5.7.0 before, RFC 3207 §4)
 *   implicit  465, RFC 8314 §3.3: TLS from the first byte
 *   relay     internal hosts, mutual TLS: a client certificate from
 *             submission.relay.caFile, on the allow-list (relay-clients.ts)
 *
 * People authenticate with AUTH PLAIN or LOGIN (RFC 4954, RFC 4616) through
 * @sluice/credentials; MAIL before AUTH gets 530 5.7.0. MAIL FROM and the
 * From header must be theirs (sender-rules.ts), RCPT counts against their
 * sending limits (rate-limiter.ts), and the message travels with envelope
 * source `submission` (relay: `relay`) and client.auth, so the filter exempts
 * it from anti-spoofing and the rewriter signs it. The Received header leaves
 * the client out (submission.privacy); no X-Originating-IP is ever added.
 *
 * TRUST: the client is authenticated but may be compromised: limits and
 * sender rules hold for every user. Passwords are never logged.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SluiceConfig } from '@sluice/config';
import { type Authenticator, hashName } from '@sluice/credentials';
import { type Envelope, type PeerCertificate, subjects } from '@sluice/proto';
import {
  type RunningService,
  reusePortFor,
  type ServiceContext,
  type ServiceDefinition,
} from '@sluice/runtime';
import {
  parseMailbox,
  parseReversePath,
  type SmtpError,
  SmtpError as SmtpErrorClass,
  smtpError,
} from '@sluice/smtp';
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
import { authMetrics } from '@sluice/telemetry';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import { authFailure } from './auth-replies.ts';
import { type AutoconfigServer, startAutoconfigServer } from './autoconfig/index.ts';
import { RateLimiter, type RateLimits } from './rate-limiter.ts';
import { matchRelayClient, peerCertificateOf, type RelayClient } from './relay-clients.ts';
import { checkRelaySender, checkUserSender, type SenderDecision, type SenderPolicy } from './sender-rules.ts';
import { submissionTransaction } from './submission-transaction.ts';
import { requireTlsForAuth } from './tls-before-auth.ts';

export type DoorKind = 'starttls' | 'implicit' | 'relay';
type SubmissionConfig = NonNullable<SluiceConfig['submission']>;

const relayNotAllowed = new SmtpErrorClass({
  code: 554,
  enhanced: '5.7.1',
  text: 'Client certificate not allowed to relay',
});
const rateUnavailable = new SmtpErrorClass({
  code: 451,
  enhanced: '4.7.0',
  text: 'Sending limits cannot be checked now, try again later',
});

interface SessionState {
  kind: DoorKind;
  conn?: SmtpConnectionHandle;
  guard?: SessionGuard;
  inData: boolean;
  /** The relay client this mTLS session is (relay door). */
  relay?: RelayClient;
  peer?: PeerCertificate;
  /** AUTH mechanism used (PLAIN, LOGIN). */
  method?: string;
  /** The socket the guard watches (implicit TLS: already the TLS socket at connect). */
  watched?: Socket;
}

export interface SubmissionDeps {
  /** Starts the authenticator (submission-definition.ts: @sluice/credentials). */
  startAuthenticator: (ctx: ServiceContext, sub: SubmissionConfig) => Promise<Authenticator>;
}

/** The 450 4.7.1 a recipient over a sending limit gets (RFC 3463 X.7.1), naming the limit. */
export function rateLimitError(window: string, limit: number, who: string): SmtpError {
  return new SmtpErrorClass({
    code: 450,
    enhanced: '4.7.1',
    text: `Sending limit reached for ${who}: ${limit} recipients per ${window}, try again later`,
  });
}

/** Rate class and limits of a session: the user's, or the relay client's class. */
function rateOf(sub: SubmissionConfig, state: SessionState, user: string) {
  if (state.relay && sub.relay) {
    const cls = state.relay.rateClass;
    return {
      rateClass: `relay-${cls}`,
      subject: state.relay.name,
      limits: sub.relay.rateLimits[cls] as RateLimits,
    };
  }
  return { rateClass: 'user', subject: user.toLowerCase(), limits: sub.rateLimits as RateLimits };
}

/** The relay door's CA certificate(s), or an error naming the key. */
function readRelayCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(
      `submission.relay.caFile: cannot read ${file} (${(err as Error).message}) — point it at the PEM of the CA that issues the relay clients' certificates`,
    );
  }
}

export function submissionServiceWith(deps: SubmissionDeps): ServiceDefinition {
  return {
    name: 'submission',
    async start(ctx: ServiceContext): Promise<RunningService> {
      const { config, bus, log, metrics, redact } = ctx;
      // AUTH refused before the authenticator is asked (no TLS yet) counts among the auth outcomes too.
      const authAttempts = authMetrics(metrics.registry).attempts;
      const sub = config.submission;
      // `sluice run` starts every service: without a submission section this one stays off.
      if (!sub) {
        log.info('submission is not configured (no submission: section): not started');
        return { name: 'submission', stop: async () => undefined, info: () => ({ enabled: false }) };
      }
      assertBodyBudget('submission.maxBodyBytesInFlight', sub.maxBodyBytesInFlight, bus.inlineLimit);
      const budget = new BodyBudget(sub.maxBodyBytesInFlight);
      const intakeFor = (source: Envelope['source']): IntakeDeps => ({
        bus,
        log,
        metrics,
        redact,
        instance: ctx.instance,
        hostname: config.hostname,
        maxMessageBytes: sub.maxMessageBytes,
        filterTimeoutMs: sub.filterTimeout * 1000,
        budget,
        door: { source, stage: 'submission' },
        received: { hideClient: sub.privacy.hideClient, hideTls: !sub.privacy.clientTlsDetails },
        skipFilter: !sub.filter,
      });
      const intake = { submission: intakeFor('submission'), relay: intakeFor('relay') };
      const limiter = new RateLimiter(bus);
      const grants: Record<string, string[]> = {};
      for (const [a, users] of Object.entries(sub.senderGrants))
        grants[a] = users.map((u) => u.toLowerCase());
      const senderPolicy: SenderPolicy = {
        domains: [config.domains.primary, ...config.domains.aliases].map((d) => d.toLowerCase()),
        plusSeparator: config.routing.plusSeparator,
        grants,
        lookup: (address) =>
          bus.request(
            subjects.resolverLookup,
            new TextEncoder().encode(JSON.stringify({ v: 1, address })),
            sub.lookupTimeout * 1000,
          ),
      };
      const relayClients: RelayClient[] = (sub.relay?.clients ?? []).map((c) => ({ ...c }));
      const relayCa = sub.relay ? readRelayCa(sub.relay.caFile) : undefined;

      const sessions = new WeakMap<SMTPServerSession, SessionState>();
      let stopping = false;
      const { refuse, say421 } = sessionRefusals('submission', metrics, log);

      const tlsFiles = certificateFiles(sub.tls, config.hostname);
      if (!tlsFiles) throw new Error('submission.tls: no certificate — set certFile and keyFile');
      const servers: SMTPServer[] = [];
      const certificate = watchCertificate(
        tlsFiles,
        (pair) => {
          for (const s of servers) s.updateSecureContext({ ...pair });
          log.info({ certFile: tlsFiles.certFile }, 'submission certificate reloaded');
        },
        (err) => log.warn({ err, certFile: tlsFiles.certFile }, 'submission certificate not reloaded'),
      );
      let authenticator: Authenticator;
      try {
        authenticator = await deps.startAuthenticator(ctx, sub);
      } catch (err) {
        certificate.close();
        throw err;
      }
      const noNetworks = cidrMatcher([], 'submission');
      const limits = new ConnectionLimits(
        { total: sub.maxClients, perIp: sub.limits.perIp, perNet: sub.maxClients },
        noNetworks,
      );
      const sessionLimits = {
        softErrors: sub.limits.softErrors,
        hardErrors: sub.limits.hardErrors,
        unknownRecipients: sub.maxRecipients + 1,
        commandTimeoutMs: sub.limits.commandTimeout * 1000,
        dataTimeoutMs: (sub.limits.dataTimeout + sub.filterTimeout + config.bus.publishTimeout) * 1000,
        maxSessionMs: sub.limits.maxSessionTime * 1000,
      };
      const handoff = new SessionHandoff();

      /** The sender check of this session: the relay client's domains, or the user's addresses. */
      const checkSender = (
        state: SessionState,
        session: SMTPServerSession,
        address: string,
        where: 'mail-from' | 'header-from',
      ): Promise<SenderDecision> =>
        state.relay
          ? Promise.resolve(checkRelaySender(state.relay, address, where))
          : checkUserSender(String(session.user ?? ''), address, senderPolicy, where);

      const transactionOf = (session: SMTPServerSession, state: SessionState): TransactionContext =>
        submissionTransaction(session, state, (address) =>
          checkSender(state, session, address, 'header-from'),
        );

      const makeServer = (kind: DoorKind): SMTPServer => {
        const tlsOptions: Partial<SMTPServerOptions> =
          kind === 'relay'
            ? { secure: true, requestCert: true, rejectUnauthorized: true, ca: relayCa }
            : kind === 'implicit'
              ? { secure: true }
              : {};
        const server: SMTPServer = new SMTPServer({
          name: config.hostname,
          banner: 'Sluice submission',
          logger: false,
          ...certificate.current(),
          minVersion: 'TLSv1.2',
          ...tlsOptions,
          authMethods: ['PLAIN', 'LOGIN'],
          // The relay door knows its clients by certificate: no AUTH there.
          disabledCommands: kind === 'relay' ? ['AUTH', 'STARTTLS'] : kind === 'implicit' ? ['STARTTLS'] : [],
          authOptional: kind === 'relay',
          authRequiredMessage: '5.7.0 Authentication required',
          hideENHANCEDSTATUSCODES: false,
          hideDSN: false,
          size: sub.maxMessageBytes,
          maxRecipients: sub.maxRecipients,
          maxClients: sub.maxClients + 1,
          socketTimeout: sub.socketTimeout * 1000,
          closeTimeout: (sub.filterTimeout + config.bus.publishTimeout + 5) * 1000,
          disableReverseLookup: true,

          onConnect(session, cb) {
            const conn = handoff.take(session.id);
            const state: SessionState = { kind, conn, inData: false };
            sessions.set(session, state);
            if (conn) {
              useOwnEnhancedCodes(conn);
              acceptQuotedLocalParts(conn);
              if (kind === 'starttls')
                requireTlsForAuth(conn, () => authAttempts.inc({ outcome: 'tls-required' }));
              state.watched = (conn as { _socket?: Socket })._socket;
              state.guard = new SessionGuard(conn, sessionLimits, (event) => {
                metrics.rejected.inc({ stage: 'submission', reason: event });
                log.info({ session: session.id, reason: event }, 'session ended by policy');
              });
            }
            metrics.smtpSessions.inc({ service: 'submission' });
            if (kind === 'relay') {
              const socket = (conn as { _socket?: TLSSocket } | undefined)?._socket;
              const peer = socket?.getPeerCertificate?.() ?? {};
              state.relay = matchRelayClient(peer, relayClients);
              state.peer = peerCertificateOf(peer);
              if (!state.relay) {
                return refuse(cb, relayNotAllowed, 'relay-client-unknown', {
                  session: session.id,
                  certificate: state.peer?.fingerprintSha256,
                  subject: state.peer?.subject,
                });
              }
              log.info({ session: session.id, relayClient: state.relay.name }, 'relay client connected');
            }
            cb();
          },

          onClose(session) {
            handoff.closed(session.id);
            sessions.get(session)?.guard?.stop();
          },

          onSecure(_socket, session, cb) {
            const state = sessions.get(session);
            const conn = state?.conn as (SmtpConnectionHandle & { _socket?: Socket }) | undefined;
            // After STARTTLS the guard moves to the TLS socket; with implicit TLS it watches it already.
            if (state?.guard && conn?._socket && conn._socket !== state.watched) {
              state.watched = conn._socket;
              state.guard.secured(conn._socket);
            }
            cb();
          },

          onAuth(auth, session, cb) {
            const state = sessions.get(session);
            const clientIp = plainIp(session.remoteAddress);
            const detail = { session: session.id, client: redact.ip(clientIp), method: auth.method };
            authenticator
              .authenticate({
                username: auth.username ?? '',
                password: auth.password ?? '',
                ...(auth.method === 'PLAIN' && (auth as { authzid?: string }).authzid
                  ? { authzid: (auth as { authzid?: string }).authzid }
                  : {}),
                clientIp,
              })
              .then(
                (outcome) => outcome,
                (err: unknown) => {
                  log.error({ err, ...detail }, 'authenticator failed');
                  return { kind: 'unavailable' as const };
                },
              )
              .then((outcome) => {
                const failure = authFailure(outcome, sub.auth.banReply);
                if (failure || outcome.kind !== 'ok') {
                  metrics.rejected.inc({ stage: 'submission', reason: `auth-${outcome.kind}` });
                  // The login name is what the client typed — at times a password — so only its hash is
                  // logged (`printf %s LOGIN | sha256sum | cut -c1-32`, lower case); the password never is.
                  log.info(
                    { ...detail, loginHash: hashName((auth.username ?? '').trim()), outcome: outcome.kind },
                    'authentication failed',
                  );
                  return cb(
                    failure ??
                      new SmtpErrorClass({ code: 535, enhanced: '5.7.8', text: 'Authentication failed' }),
                  );
                }
                if (state) state.method = auth.method;
                log.info({ ...detail, user: outcome.user }, 'authenticated');
                cb(null, { user: outcome.user });
              });
          },

          onMailFrom(address: SMTPServerAddress, session, cb) {
            const state = sessions.get(session) ?? { kind, inData: false };
            const smtputf8 = session.envelope.smtpUtf8 === true;
            const detail = {
              session: session.id,
              user: session.user,
              mailFrom: redact.address(address.address),
            };
            const refusal = mailFromRefusal(address, { smtputf8, inlineLimit: bus.inlineLimit, budget });
            if (refusal) return refuse(cb, refusal.error, refusal.reason, detail);
            const from = parseReversePath(address.address, { smtputf8 });
            if (!from.ok) return refuse(cb, smtpError('badSenderSyntax'), 'sender-syntax', detail);
            const sender = from.nullSender ? '' : from.mailbox.address;
            checkSender(state, session, sender, 'mail-from').then((d) =>
              d.ok ? cb() : refuse(cb, d.error, d.reason, detail),
            );
          },

          onRcptTo(address: SMTPServerAddress, session, cb) {
            const state = sessions.get(session) ?? { kind, inData: false };
            const detail = { session: session.id, user: session.user, rcpt: redact.address(address.address) };
            const badParameter = rcptParameterRefusal(address) ?? orcptRefusal(address);
            if (badParameter) return refuse(cb, badParameter.error, badParameter.reason, detail);
            const rcpt = parseMailbox(address.address, { smtputf8: session.envelope.smtpUtf8 === true });
            if (!rcpt.ok || rcpt.mailbox.domainKind !== 'domain' || rcpt.mailbox.routingCharacters) {
              return refuse(cb, smtpError('badRecipientSyntax'), 'recipient-syntax', detail);
            }
            const who = state.relay ? `relay client ${state.relay.name}` : String(session.user ?? '');
            const rate = rateOf(sub, state, String(session.user ?? ''));
            limiter.take(rate.rateClass, rate.subject, rate.limits, 1).then(
              (d) =>
                d.ok ? cb() : refuse(cb, rateLimitError(d.window, d.limit, who), `rate-${d.window}`, detail),
              (err: unknown) => {
                log.warn({ err, ...detail }, 'rate counters unavailable');
                refuse(cb, rateUnavailable, 'rate-unavailable', detail);
              },
            );
          },

          onData(stream: SMTPServerDataStream, session, cb) {
            const state = sessions.get(session) ?? { kind, inData: false };
            state.inData = true;
            const tx = transactionOf(session, state);
            const source = state.relay ? 'relay' : 'submission';
            const started = performance.now();
            receiveMessage(intake[source], tx, stream).then((result) => {
              state.inData = false;
              metrics.stageDuration.observe({ stage: 'submission' }, (performance.now() - started) / 1000);
              const detail = {
                session: session.id,
                user: tx.auth?.user,
                mailFrom: redact.address(tx.mailFrom),
                rcpts: tx.recipients.length,
                ...result.trace,
              };
              if (result.ok) {
                metrics.received.inc({ source });
                log.info({ ...detail, queueId: result.queueId, duplicate: result.duplicate }, 'accepted');
                cb(null, result.text);
              } else {
                refuse(cb, result.error, result.reason, { ...detail, queueId: result.queueId });
              }
              if (!result.ok && result.disconnect) state.conn?.close();
              else if (stopping) say421(state.conn);
            });
          },
        });
        server.on('error', (err) => log.debug({ err }, 'smtp connection error'));
        return server;
      };

      const doors: Array<{ kind: DoorKind; host: string; port: number }> = [
        ...sub.listen.starttls.map((l) => ({ kind: 'starttls' as const, ...l })),
        ...sub.listen.implicitTls.map((l) => ({ kind: 'implicit' as const, ...l })),
        ...(sub.relay?.listen ?? []).map((l) => ({ kind: 'relay' as const, ...l })),
      ];
      let listening: Listening<{ kind: DoorKind; host: string; port: number }>;
      try {
        listening = await listenAll(
          'submission',
          doors,
          (door) => {
            const server = makeServer(door.kind);
            servers.push(server);
            return createFront(server, {
              hostname: config.hostname,
              limits,
              greetDelayMs: 0,
              trusted: noNetworks,
              proxyFrom: noNetworks,
              proxyTimeoutMs: 10_000,
              draining: () => stopping,
              implicitTls: door.kind !== 'starttls',
              onRefused: (reason, ip) => {
                metrics.rejected.inc({ stage: 'submission', reason });
                log.info({ client: redact.ip(ip), reason, door: door.kind }, 'connection refused');
              },
              onSession: handoff.onSession,
            });
          },
          { reusePort: reusePortFor(config) },
        );
      } catch (err) {
        certificate.close();
        await authenticator.close();
        throw err;
      }
      const bound = listening.bound;
      const closeFronts = () => listening.close();
      let autoconfig: AutoconfigServer | undefined;
      if (sub.autoconfig) {
        const ac = sub.autoconfig;
        const portOf = (kind: DoorKind) => {
          const door = doors.find((d) => d.kind === kind);
          return door ? door.port || bound.find((b) => b.kind === kind)?.port : undefined;
        };
        try {
          autoconfig = await startAutoconfigServer({
            domains: [config.domains.primary, ...config.domains.aliases],
            displayName: ac.displayName,
            submissionHost: ac.submissionHost ?? config.hostname,
            ports: { submission: portOf('starttls'), submissions: portOf('implicit') },
            ...(ac.imapHost ? { imapHost: ac.imapHost, imapPort: ac.imapPort } : {}),
            listen: { ...ac.listen, reusePort: reusePortFor(config) },
            tls: ac.certFile && ac.keyFile ? { certFile: ac.certFile, keyFile: ac.keyFile } : tlsFiles,
            logger: log,
            metrics,
          });
        } catch (err) {
          await closeFronts();
          certificate.close();
          await authenticator.close();
          throw err;
        }
      }

      return {
        name: 'submission',
        info: () => ({
          listen: bound,
          ...(autoconfig ? { autoconfigPort: autoconfig.port } : {}),
          ports: Object.fromEntries(
            (['starttls', 'implicit', 'relay'] as const).map((k) => [
              k,
              bound.filter((b) => b.kind === k).map((b) => b.port),
            ]),
          ),
        }),
        async stop() {
          // Drain as the MX does (RFC 5321 §3.8): idle sessions get 421 now, busy ones after their reply.
          stopping = true;
          await drainSessions({
            connections: () => connectionsOf(servers),
            busy: (c) => Boolean(c.session.envelope?.mailFrom || sessions.get(c.session)?.inData),
            say421,
            timeoutMs: sub.drainTimeout * 1000,
          });
          certificate.close();
          await Promise.all([closeFronts(), autoconfig?.close()]);
          await authenticator.close();
        },
      };
    },
  };
}
