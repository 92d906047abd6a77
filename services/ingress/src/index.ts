/** @sluice/ingress: the MX service and the plain functions it is made of. */
export { connectionOf, type SmtpConnectionHandle, useOwnEnhancedCodes } from './enhanced-replies.ts';
export {
  buildEnvelope,
  mailFromOf,
  messageIdOf,
  type TransactionFacts,
  traceparentOf,
} from './envelope-builder.ts';
export { clientIpOf, ingressService, transactionOf } from './ingress-service.ts';
export {
  type IntakeDeps,
  type IntakeResult,
  queuedTextOf,
  receiveMessage,
  type TransactionContext,
} from './message-intake.ts';
export { type MessageRead, readMessage } from './message-reader.ts';
export { type FilterOutcome, filterOutcome, publishFailure } from './queue-answers.ts';
export {
  checkRecipient,
  encodeLookupRequest,
  type LookupDecision,
  lookupDecision,
  type OurDomains,
  ourDomains,
  type RecipientCheck,
} from './recipient-policy.ts';
