/**
 * The before-queue verdict for one message: what the filter answers the
 * ingress (FilterReply, proto rpc.ts) while the client still waits for the
 * reply to its final dot, so a refusal is an SMTP reply and never a bounce
 * (RELIABILITY-NOTES §1, rule 5: reject before 250).
 *
 * Steps: authenticate (SPF, DKIM, DMARC, ARC: authentication.ts), the
 * content rules (header/MIME sanity, DNS lists), anti-spoofing of our own
 * domains, the optional engines (rspamd, clamd) in parallel, then the
 * action from the score (actions.ts; greylisting only when the score asks
 * for it). The reply carries the headers to prepend (Authentication-Results,
 * X-Spam-*) and the header fields of the body to drop (forged
 * Authentication-Results, RFC 8601 §5); the body itself is never changed.
 */
import type { Readable } from 'node:stream';
import type { Envelope, FilterReply, HeaderRemoval, RuleHit } from '@sluice/proto';
import { chooseAction, spamHeaders, type Thresholds } from './actions.ts';
import {
  type AuthenticationInput,
  authenticateMessage,
  hasTemperror,
  type RuleWeights,
} from './authentication.ts';
import type { DnsResolve } from './dns-resolver.ts';
import { type ConfiguredEngine, runEngine } from './engines/engine.ts';
import { type GreylistOptions, type GreylistStore, greylistCheck } from './greylist.ts';
import { headerFields } from './header-block.ts';
import { inlineContent, type MessageContent } from './message-content.ts';
import { antiSpoofing } from './rules/anti-spoofing.ts';
import { type DnsListCache, type DnsListOptions, dnsListHits } from './rules/dns-lists.ts';
import { forgedAuthResults } from './rules/forged-auth-results.ts';
import { headerSanityHits } from './rules/header-sanity.ts';

/** The filter's policy, from config filter.* (filter-service.ts builds it). */
export interface FilterPolicy {
  weights: RuleWeights;
  thresholds: Thresholds;
  antiSpoofing: 'reject' | 'score';
  /** Our domains (domains.primary + aliases), lower case. */
  ourDomains: ReadonlySet<string>;
  dnsLists?: { options: DnsListOptions; cache: DnsListCache };
  greylist?: { options: GreylistOptions; store: GreylistStore };
  engines: readonly ConfiguredEngine[];
}

export interface VerdictDeps {
  authservId: string;
  resolver: DnsResolve;
  /** Upper bound for the SPF evaluation, ms. */
  spfTimeLimitMs?: number;
  /** Absent: every weight 0, nothing rejected (authentication results only). */
  policy?: FilterPolicy;
}

const NO_POLICY: FilterPolicy = {
  weights: {},
  thresholds: {
    reject: Number.POSITIVE_INFINITY,
    greylist: Number.POSITIVE_INFINITY,
    tag: Number.POSITIVE_INFINITY,
  },
  antiSpoofing: 'score',
  ourDomains: new Set(),
  engines: [],
};

/** Doors whose senders are authenticated by other means than SPF/DKIM/DMARC. */
const TRUSTED_SOURCES = new Set<Envelope['source']>(['submission', 'relay', 'dsn']);

/** Header fields a sender may not set for us: our own verdict headers. */
const OUR_VERDICT_HEADERS = new Set(['x-spam-score', 'x-spam-status']);

export async function computeVerdict(
  env: Envelope,
  /** What authentication reads: the whole body, or for a large one a stream (message-source.ts). */
  body: Uint8Array | Readable,
  deps: VerdictDeps,
  /** Epoch ms after which nobody waits for the answer (the ingress' deadline). */
  deadline = Number.POSITIVE_INFINITY,
  /** What the content rules and engines read; default: `body` when it is bytes, else its header section is unknown. */
  content: MessageContent = body instanceof Uint8Array
    ? inlineContent(body)
    : { bytes: new Uint8Array(), complete: false, open: async () => (async function* () {})() },
): Promise<FilterReply> {
  const policy = deps.policy ?? NO_POLICY;
  const fields = headerFields(content.bytes);
  const input: AuthenticationInput = {
    ip: env.client.ip,
    helo: env.client.helo,
    sender: env.mailFrom.address,
    authservId: deps.authservId,
    resolver: deps.resolver,
    spfTimeLimitMs: deps.spfTimeLimitMs,
    weights: policy.weights,
  };
  const [auth, listHits, engineOutcomes] = await Promise.all([
    authenticateMessage(body, input),
    policy.dnsLists && env.source === 'mx'
      ? dnsListHits(
          env.client.ip,
          content.bytes,
          policy.dnsLists.options,
          deps.resolver,
          policy.dnsLists.cache,
          policy.weights,
        )
      : Promise.resolve([] as RuleHit[]),
    Promise.all(policy.engines.map((e) => runEngine(e, content, env, deadline))),
  ]);

  // Our users (submission, SMTP AUTH) and trusted relays (mTLS) send from anywhere: SPF/DKIM/DMARC
  // of their client say nothing about them, so the AUTH_* results are listed but weigh nothing.
  const authHits = TRUSTED_SOURCES.has(env.source) ? auth.rules.map((r) => ({ ...r, score: 0 })) : auth.rules;
  const hits: RuleHit[] = [
    ...authHits,
    ...headerSanityHits(content.bytes, fields, policy.weights, content.complete),
    ...listHits,
  ];
  const spoof = antiSpoofing(env, fields, auth.summary.dmarc, policy.ourDomains, policy.weights);
  if (spoof.hit) hits.push(policy.antiSpoofing === 'score' ? spoof.hit : { ...spoof.hit, score: 0 });

  let virus: string | undefined;
  let engineTempfail: string | undefined;
  for (const o of engineOutcomes) {
    if (o.kind === 'scanned') {
      hits.push(...o.hits);
      virus ??= o.virus;
    } else if (o.mode === 'tempfail') {
      engineTempfail ??= `${o.engine}: ${o.error}`;
      hits.push({ name: 'ENGINE_FAILED', score: 0, detail: `${o.engine}: ${o.error}` });
    } else {
      hits.push({ name: 'ENGINE_SKIPPED', score: 0, detail: `${o.engine}: ${o.error}` });
    }
  }

  const gl = policy.greylist;
  const verdict = await chooseAction({
    hits,
    thresholds: policy.thresholds,
    virus,
    temperror: env.source === 'mx' && auth.summary.dmarc !== 'pass' && hasTemperror(auth.summary),
    spoofReject: Boolean(spoof.hit) && policy.antiSpoofing === 'reject',
    engineTempfail,
    greylist: gl
      ? async () => {
          const d = await greylistCheck(env, gl.store, gl.options);
          if (d.result === 'skipped')
            hits.push({ name: 'GREYLIST_SKIPPED', score: 0, detail: String(d.error) });
          if (d.result === 'exempt') hits.push({ name: 'GREYLIST_EXEMPT', score: 0, detail: d.why });
          if (d.result === 'greylist') hits.push({ name: 'GREYLISTED', score: 0, detail: d.why });
          return d.result === 'greylist' ? 'greylist' : 'pass';
        }
      : null,
  });

  const removeHeaders: HeaderRemoval[] = forgedAuthResults(fields, deps.authservId);
  for (const f of fields) {
    if (OUR_VERDICT_HEADERS.has(f.name)) {
      removeHeaders.push({
        name: f.name === 'x-spam-score' ? 'X-Spam-Score' : 'X-Spam-Status',
        index: f.index,
        reason: 'set by the sender',
      });
    }
  }
  const tagging = deps.policy && (verdict.action === 'accept' || verdict.action === 'tag');
  return {
    v: 1,
    verdict,
    auth: auth.summary,
    prepend: [auth.header, ...(tagging ? spamHeaders(verdict, policy.thresholds.tag) : [])],
    ...(removeHeaders.length > 0 ? { removeHeaders } : {}),
  };
}
