/** @sluice/rewriter: the rewrite stage (SRS, header hygiene, DKIM signing, ARC sealing). */
export {
  INTERNAL_HEADER_PREFIX,
  isExternalRoute,
  type RewriteContext,
  type RewriteResult,
  rewriteEnvelope,
} from './rewrite.ts';
export {
  createRewriterService,
  type RewriterDeps,
  rewritePart,
  rewriterService,
} from './rewriter-service.ts';
export { RewriterConfigError, type RewriterSetup, rewriterSetup } from './rewriter-setup.ts';
export { type SigningContext, type SigningResult, signAndSeal } from './signing.ts';
