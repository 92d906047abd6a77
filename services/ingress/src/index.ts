/** @sluice/ingress: the MX service and the plain functions it is made of. */
export {
  buildEnvelope,
  connectionOf,
  type FilterOutcome,
  filterOutcome,
  type IntakeDeps,
  type IntakeResult,
  type MessageRead,
  mailFromOf,
  messageIdOf,
  publishFailure,
  queuedTextOf,
  readMessage,
  receiveMessage,
  type SmtpConnectionHandle,
  type TransactionContext,
  type TransactionFacts,
  traceparentOf,
  useOwnEnhancedCodes,
} from '@sluice/smtp-intake';
export { clientIpOf, ingressService, transactionOf } from './ingress-service.ts';
export {
  checkRecipient,
  encodeLookupRequest,
  type LookupDecision,
  lookupDecision,
  type OurDomains,
  ourDomains,
  type RecipientCheck,
} from './recipient-policy.ts';
