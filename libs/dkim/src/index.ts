/** @sluice/dkim: DKIM keys and signing (rsa-sha256, ed25519-sha256), author domain, ARC sealing. */
export { type ArcSealInput, type ArcSealResult, arcSeal } from './arc-seal.ts';
export { type AuthorDomain, authorDomain, parseMailboxes } from './author.ts';
export { bodyHash, relaxedBody, relaxedHeader } from './canonical.ts';
export {
  buildKeyring,
  type DkimKey,
  type DkimKeyConfig,
  DkimKeyError,
  type DkimKeyring,
  type DkimKeyType,
  dkimTxtRecord,
  loadDkimKey,
  publicKeyData,
} from './keys.ts';
export { fieldValue, type HeaderField, type SplitMessage, splitMessage } from './message-headers.ts';
export {
  DEFAULT_SIGNED_HEADERS,
  dkimSignature,
  dkimSignatureOffThread,
  OVERSIGNED,
  type SignOptions,
  selectHeaders,
} from './sign.ts';
export { RelaxedBodyHash, streamedBodyHash, streamedMessageParts } from './streaming-body-hash.ts';
