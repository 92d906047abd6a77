/**
 * What one message asks of outbound TLS (RFC 8689), applied to the
 * destination's TLS policy (tls-policy.ts):
 *
 *   - REQUIRETLS (the MAIL FROM parameter the ingress recorded as
 *     mailFrom.requireTls; RFC 8689 §4.1 then ignores the TLS-Required
 *     header). §4.2.1: the next hop's name must be authentic — a
 *     DNSSEC-validated MX, a host allowed by the domain's MTA-STS policy, or
 *     a transport the operator configured — and its certificate
 *     authenticated: by DANE (RFC 7672) where TLSA records apply, else PKIX
 *     for that host name (RFC 6125). The server must then advertise
 *     REQUIRETLS, and MAIL FROM carries it. A host failing any step is
 *     QUIT and the next one tried; when every host failed for these reasons
 *     the message fails for good (5.7.10 encryption needed, 5.7.30 REQUIRETLS
 *     support required) and the sender gets a DSN — it is never sent in
 *     cleartext or to an unauthenticated host. Hosts that could not be
 *     reached at all, or a DNS failure, defer as usual (a later attempt may
 *     find the secure path; decisions/0032).
 *   - "TLS-Required: No" in the header (§3, §4.2.2): the sender asks that
 *     the recipient domain's TLS policy (DANE, MTA-STS) not stop delivery.
 *     The policy is still tried first; only where it fails is the host used
 *     opportunistically (STARTTLS when offered, certificate unchecked). The
 *     header is read only then, so ordinary mail never pays for it.
 */
import type { Envelope, Route } from '@sluice/proto';
import { headerBlock } from './dsn.ts';
import { isTlsSessionFailure, localReplies } from './local-replies.ts';
import { type OutgoingMessage, readMessageStart } from './outgoing-message.ts';
import { type DestinationTls, type HostDecision, type HostTls, pkixProblem } from './tls-policy.ts';

/** Header blocks are read at most this far (a header without its end is not honoured). */
const MAX_HEADER_BYTES = 256 * 1024;

/** RFC 8689 §3: `TLS-Required: No` (field name and value case-insensitive, folding allowed). */
export function hasTlsRequiredNo(head: Buffer): boolean {
  const unfolded = head.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  return unfolded.split(/\r?\n/).some((line) => /^tls-required[ \t]*:[ \t]*no[ \t]*$/i.test(line));
}

/** Memoised: does the message say `TLS-Required: No`? (read on first need only). */
export function tlsRequiredNoOf(message: Pick<OutgoingMessage, 'open'>): () => Promise<boolean> {
  let answer: Promise<boolean> | undefined;
  return () => {
    answer ??= message
      .open()
      .then((stream) => readMessageStart(stream, MAX_HEADER_BYTES, true))
      .then(
        (start) => hasTlsRequiredNo(headerBlock(start)),
        () => false,
      );
    return answer;
  };
}

/**
 * RFC 8689 §4.2.1 over the destination's policy: hosts whose name or
 * certificate cannot be authenticated are skipped with a 5.7.10 reply.
 */
export function requireTlsPlan(base: DestinationTls, route: Route, ca?: Buffer): DestinationTls {
  return {
    mxSecure: base.mxSecure,
    async forHost(candidate): Promise<HostDecision> {
      const d = await base.forHost(candidate);
      if (d.kind === 'skip') {
        // A DNS answer that could not be validated is temporary; a host the policy rules out is final.
        if (d.result === 'dnssec-invalid' || d.result === 'tlsa-invalid') return d;
        return { ...d, reply: localReplies.requireTlsNoTls(d.reply) };
      }
      const tls = d.tls;
      // DANE- or MTA-STS-authenticated sessions already meet §4.2.1 steps 2 and 4.
      if (tls.outcome === 'dane' || tls.outcome === 'mta-sts') return d;
      // Step 2: the host name must be authentic: DNSSEC MX, MTA-STS match, or configured by the operator.
      const host = route.kind === 'smtp' ? route.host : candidate.servername;
      const validated = route.kind === 'smtp' || base.mxSecure === true || tls.stsMatched === true;
      if (!host || !validated) {
        return {
          kind: 'skip',
          policy: tls.policy,
          report: d.report,
          result: 'validation-failure',
          reply: localReplies.requireTlsNoTls(
            `${candidate.label} is not an MX validated by DNSSEC or MTA-STS (RFC 8689 §4.2.1)`,
          ),
        };
      }
      // Step 4: PKIX (RFC 6125) for that name; no cleartext, no unverified TLS.
      const pkix: HostTls = {
        ...tls,
        policyKey: `pkix:${host}`,
        session: {
          requireTls: true,
          ignoreTlsErrors: false,
          ...(ca ? { ca } : {}),
          verifyPeer: (socket) => pkixProblem(socket, host),
        },
      };
      return { ...d, tls: pkix };
    },
  };
}

/**
 * RFC 8689 §4.2.2 over the destination's policy: where DANE or MTA-STS
 * would stop delivery and the message says `TLS-Required: No`, the host is
 * used opportunistically instead (`opportunistic`: the configured default).
 */
export function tlsOptionalPlan(
  base: DestinationTls,
  opportunistic: HostTls,
  tlsRequiredNo: () => Promise<boolean>,
): DestinationTls {
  return {
    mxSecure: base.mxSecure,
    async forHost(candidate): Promise<HostDecision> {
      const d = await base.forHost(candidate);
      // The failure still counts for TLS-RPT; the header is read only if a policy fails.
      if (d.kind === 'skip') return { ...d, fallback: { allowed: tlsRequiredNo, tls: opportunistic } };
      if (d.tls.policy === 'none' || !d.tls.session.requireTls) return d;
      return { ...d, tls: { ...d.tls, fallback: { allowed: tlsRequiredNo, tls: opportunistic } } };
    },
  };
}

/** A session-open failure of a REQUIRETLS message: TLS missing or unauthenticated is final (§4.2.1). */
export function requireTlsOpenFailure(reply: string): string {
  return isTlsSessionFailure(reply) ? localReplies.requireTlsNoTls(reply) : reply;
}

/**
 * Whether REQUIRETLS applies to this part: the sender asked for it and the
 * next hop relays (SMTP). Handing the message to the mailbox store over LMTP
 * (RFC 2033) is final delivery, not relaying, so §4.2.1 does not apply there.
 */
export function requireTlsApplies(env: Pick<Envelope, 'mailFrom' | 'route'>): boolean {
  return (
    env.mailFrom.requireTls === true &&
    env.route !== undefined &&
    !(env.route.kind === 'smtp' && env.route.lmtp)
  );
}

/** The TLS plan for this message over the destination's policy: REQUIRETLS, or TLS-Required: No honoured. */
export function messageTlsPlan(
  env: Pick<Envelope, 'mailFrom' | 'route'>,
  base: DestinationTls,
  opts: { defaults: HostTls['session']; ca?: Buffer; message: Pick<OutgoingMessage, 'open'> },
): DestinationTls {
  if (requireTlsApplies(env) && env.route) return requireTlsPlan(base, env.route, opts.ca);
  const opportunistic: HostTls = { policy: 'none', outcome: 'tls', session: { ...opts.defaults } };
  return tlsOptionalPlan(base, opportunistic, tlsRequiredNoOf(opts.message));
}
