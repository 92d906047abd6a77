/**
 * @sluice/smtp-intake: the SMTP intake the MX (services/ingress) and the
 * submission service share (decision 0026). The generic front of an SMTP
 * listener over smtp-server (our own accept loop with PROXY headers, per-IP
 * limits and drain; the per-session guard; STARTTLS certificates reloaded
 * from files; our enhanced codes; quoted paths) and the path of one message
 * from DATA into the resolve stream (body reader and budget, body store, the
 * filter's verdict, Received header, publish). What a service accepts (its
 * recipients, its senders, its authentication) stays in the service.
 */
export { BodyBudget, BodyReservation } from './body-budget.ts';
export {
  assertBodyBudget,
  type CommandRefusal,
  MAIL_PARAMS,
  mailFromRefusal,
  orcptRefusal,
  RCPT_PARAMS,
  rcptParameterRefusal,
} from './command-checks.ts';
export {
  type Admission,
  ConnectionLimits,
  type ConnectionLimitsConfig,
  cidrMatcher,
  networkOf,
} from './connection-limits.ts';
export { connectionOf, type SmtpConnectionHandle, useOwnEnhancedCodes } from './enhanced-replies.ts';
export {
  buildEnvelope,
  mailFromOf,
  messageIdOf,
  type TransactionFacts,
  traceparentOf,
} from './envelope-builder.ts';
export { connectionsOf, drainSessions, type Listening, listenAll, SessionHandoff } from './listeners.ts';
export {
  type IntakeDeps,
  type IntakeResult,
  queuedTextOf,
  receiveMessage,
  type TransactionContext,
} from './message-intake.ts';
export {
  ContentScanner,
  HEAD_BYTES,
  MAX_LINE_OCTETS,
  type MessageRead,
  type ReadOptions,
  readMessage,
} from './message-reader.ts';
export { type ProxiedAddress, parseProxyHeader, readProxyHeader } from './proxy-header.ts';
export { type FilterOutcome, filterOutcome, publishFailure } from './queue-answers.ts';
export { acceptQuotedLocalParts } from './quoted-paths.ts';
export { type GuardEvent, SessionGuard, type SessionLimits } from './session-guard.ts';
export { type SessionRefusals, sessionRefusals } from './session-refusals.ts';
export { createFront, type FrontOptions, plainIp } from './smtp-front.ts';
export {
  type CertificatePair,
  type CertificateSource,
  certificateFiles,
  type TlsConfig,
  watchCertificate,
} from './tls-certificate.ts';
