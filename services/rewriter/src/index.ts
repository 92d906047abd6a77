/** @sluice/rewriter: the rewrite stage (SRS, DKIM and ARC plug into rewriteEnvelope). */
export { type RewriteContext, type RewriteResult, rewriteEnvelope } from './rewrite.ts';
export {
  createRewriterService,
  type RewriterDeps,
  rewritePart,
  rewriterService,
} from './rewriter-service.ts';
