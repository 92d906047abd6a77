/** @sluice/submission: authenticated sending (587, 465) and the mTLS relay door, and the plain functions they are made of. */
export { authFailure, authReplies } from './auth-replies.ts';
export { type FromResult, fromAddresses } from './header-from.ts';
export { type CounterStore, counterKey, RateLimiter, type RateLimits } from './rate-limiter.ts';
export { matchRelayClient, normalFingerprint, peerCertificateOf, type RelayClient } from './relay-clients.ts';
export { checkRelaySender, checkUserSender, isOwnAddress, type SenderPolicy } from './sender-rules.ts';
export { submissionService } from './submission-definition.ts';
export {
  type DoorKind,
  rateLimitError,
  type SubmissionDeps,
  submissionServiceWith,
} from './submission-service.ts';
