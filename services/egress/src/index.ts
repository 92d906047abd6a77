/** @sluice/egress: delivery of parts to their next hop by SMTP/LMTP, with a ledger and retries. */
export { deliverPart, type EgressDeps, RECIPIENTS_PER_TRANSACTION } from './deliver.ts';
export {
  type Candidate,
  createDnsLookup,
  type DestinationPlan,
  type DnsLookup,
  destinationFor,
  MAX_CANDIDATES,
  type MxRecord,
  SMTP_PORT,
} from './destination.ts';
export { buildDsn, type DsnInput, type DsnRecipient, diagnosticCode, fieldText, statusOf } from './dsn.ts';
export { createEgressService, type EgressServiceOptions, egressService } from './egress-service.ts';
export { buildForwardNotice } from './forward-notice.ts';
export { ledgerEntries, ledgerKey } from './ledger.ts';
export { localReplies } from './local-replies.ts';
export {
  type AttemptOutcome,
  dsnSuppressed,
  type NotifyDeps,
  reportedAction,
  sendNotifications,
} from './notify-sender.ts';
export { type Outcome, oneLine, outcomeOfCode, replyCode } from './outcome.ts';
export { LEASE_AHEAD_MS, SharedPaceLeases, sliceSize } from './pace-leases.ts';
export { describeDuration, isExpired, retryDelayMs } from './retry-schedule.ts';
export {
  type RecipientReply,
  SessionOpenError,
  type SessionOptions,
  SmtpSession,
  type Transaction,
} from './smtp-session.ts';
