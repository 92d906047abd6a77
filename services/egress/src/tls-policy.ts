/**
 * The outbound TLS policy of one delivery attempt: for each candidate host,
 * how the session must be secured and what its TLS outcome is called.
 *
 * Order (RFC 8461 §2: DANE wins where both are published):
 *   1. DANE (RFC 7672) for MX routes, when egress.dnsResolver is set:
 *      - the MX RRset must be DNSSEC-secure (§2.2.1); a bogus or failed MX
 *        answer defers the whole destination (we cannot tell whether DANE
 *        applies, and must not downgrade);
 *      - the host's address records must be secure (§2.2.2), else no DANE;
 *      - TLSA at _25._tcp.<mx host> (§2.2.3): a failed/bogus lookup skips
 *        the host; secure usable records make TLS mandatory and authenticated
 *        (dane-verify.ts); secure records that are all unusable make TLS
 *        mandatory but unauthenticated (§2.2, outcome "tls"); none or
 *        insecure: not DANE.
 *   2. MTA-STS (RFC 8461) for the next-hop domain (mta-sts.ts): enforce
 *      skips hosts not matching the policy's mx patterns and requires
 *      PKIX-valid TLS for the MX name (§5, §4.2); testing delivers as
 *      usual and records the mismatch (§5).
 *   3. Otherwise the configured default (egress.requireTls/ignoreTlsErrors).
 * Transport and relay routes (kind "smtp") named by a host name get DANE
 * when that name's addresses are DNSSEC-secure and it has TLSA records
 * (RFC 7672 §2.2.2, transportDane below); otherwise the configured default.
 */

import { isIP } from 'node:net';
import { checkServerIdentity, type TLSSocket } from 'node:tls';
import type { SecureDns, TlsaAnswer, TlsaRecord } from '@sluice/dns';
import type { Route, TlsOutcome } from '@sluice/proto';
import { isUsableTlsa, peerChain, verifyDaneChain } from './dane-verify.ts';
import { type Candidate, SMTP_PORT } from './destination.ts';
import { localReplies } from './local-replies.ts';
import type { SessionOptions } from './smtp-session.ts';

/** What a TLS-RPT report (RFC 8460 §4.4) would call the policy. */
export type PolicyKind = 'dane' | 'mta-sts' | 'none';

export interface HostTls {
  policy: PolicyKind;
  /** The outcome recorded when the session runs over TLS. */
  outcome: TlsOutcome;
  session: Pick<SessionOptions, 'requireTls' | 'ignoreTlsErrors' | 'verifyPeer' | 'ca'>;
  /** MTA-STS testing mode: a failure is recorded, not enforced. */
  note?: string;
  /** What the session pool keys on besides `policy` (the TLSA records for DANE). */
  policyKey?: string;
  /** The host matches the destination's MTA-STS policy (enforce or testing): a validated MX (RFC 8689 §4.2.1). */
  stsMatched?: boolean;
  /**
   * What to open instead when a session under this policy fails and the
   * message allows it (TLS-Required: No, RFC 8689 §4.2.2: require-tls.ts).
   */
  fallback?: { allowed(): Promise<boolean>; tls: HostTls };
}

/** What a TLS-RPT report (RFC 8460 §4.4) says of the policy a session ran under (tls-rpt-store.ts). */
export interface ReportedPolicy {
  type: 'tlsa' | 'sts';
  /** The next-hop domain the policy is for. */
  domain: string;
  /** "policy-string": the TLSA records, or the MTA-STS policy's lines. */
  strings: string[];
  /** The MTA-STS policy's mx patterns ("mx-host"); for DANE the host itself is reported. */
  mxPatterns?: string[];
}

export type HostDecision =
  /** `connect`: open the session with this candidate instead (a transport's DNSSEC-validated address). */
  | { kind: 'use'; tls: HostTls; report?: ReportedPolicy; connect?: Candidate }
  /** Do not deliver to this host; `result` is the RFC 8460 §4.3 result type. */
  | {
      kind: 'skip';
      policy: PolicyKind;
      result: string;
      reply: string;
      report?: ReportedPolicy;
      /** Use the host anyway, opportunistically, when the message allows it (TLS-Required: No). */
      fallback?: HostTls['fallback'];
    };

export interface MtaStsPolicyView {
  mode: 'enforce' | 'testing' | 'none';
  matches(host: string): boolean;
  /** The policy's lines and mx patterns, for TLS-RPT. */
  lines?: string[];
  mx?: string[];
}

export interface MtaStsSource {
  /** The domain's policy, or undefined when it has none; throws only for transient failures. */
  policyFor(domain: string): Promise<MtaStsPolicyView | undefined>;
}

export interface DestinationTls {
  forHost(candidate: Candidate): Promise<HostDecision>;
  /** The MX RRset was DNSSEC-validated (RFC 7672 §2.2.1): its host names are authentic. */
  mxSecure?: boolean;
}

export interface TlsPolicyDeps {
  defaults: Pick<SessionOptions, 'requireTls' | 'ignoreTlsErrors'>;
  secureDns?: SecureDns;
  mtaSts?: MtaStsSource;
  /** PKIX CA certificates added for MTA-STS (egress.mtaSts.caFile). */
  ca?: Buffer;
}

const failed = (rcode: string) => rcode === 'servfail' || rcode === 'timeout' || rcode === 'error';

export async function destinationTls(
  route: Route,
  deps: TlsPolicyDeps,
): Promise<{ kind: 'defer'; reply: string; result: string } | { kind: 'plan'; tls: DestinationTls }> {
  const fallback: HostTls = { policy: 'none', outcome: 'tls', session: { ...deps.defaults } };
  if (route.kind === 'smtp' && deps.secureDns && isIP(route.host) === 0) {
    return { kind: 'plan', tls: transportDane(route, deps.secureDns, fallback) };
  }
  if (route.kind !== 'mx' || !deps.secureDns) {
    return { kind: 'plan', tls: { forHost: async () => ({ kind: 'use', tls: fallback }) } };
  }
  const dns = deps.secureDns;
  const domain = route.domain;
  const mx = await dns.mx(domain);
  if (failed(mx.rcode)) {
    // RFC 7672 §2.2.1: a bogus or indeterminate MX answer: no delivery, no downgrade.
    return {
      kind: 'defer',
      result: 'dnssec-invalid',
      reply: localReplies.tlsPolicy(`MX of ${domain} could not be validated (${mx.detail ?? mx.rcode})`),
    };
  }
  const mxSecure = mx.secure;
  let sts: MtaStsPolicyView | undefined;
  let stsError: string | undefined;
  let stsLoaded = false;
  const stsPolicy = async () => {
    if (!stsLoaded && deps.mtaSts) {
      stsLoaded = true;
      try {
        sts = await deps.mtaSts.policyFor(domain);
      } catch (err) {
        stsError = (err as Error).message;
      }
    }
    return sts;
  };

  let tlsaStrings: string[] = [];
  // RFC 8460 §4.4: the policy each decision was made under, for the day's report.
  const reported = (d: HostDecision): HostDecision => {
    const policy = d.kind === 'use' ? d.tls.policy : d.policy;
    if (policy === 'dane') return { ...d, report: { type: 'tlsa', domain, strings: tlsaStrings } };
    if (policy === 'mta-sts') {
      return { ...d, report: { type: 'sts', domain, strings: sts?.lines ?? [], mxPatterns: sts?.mx ?? [] } };
    }
    return d;
  };
  const decide = async (candidate: Candidate): Promise<HostDecision> => {
    const host = candidate.servername;
    if (mxSecure && host) {
      const dane = await daneFor(dns, host, domain);
      if (dane.kind === 'skip' || dane.kind === 'use') {
        tlsaStrings = dane.tlsa;
        return dane;
      }
    }
    const policy = host ? await stsPolicy() : undefined;
    if (!policy && stsError) {
      // A cached policy would have answered; with none, RFC 8461 §3.3 treats fetch failure as "no policy".
      return { kind: 'use', tls: { ...fallback, note: `MTA-STS unavailable: ${stsError}` } };
    }
    if (!policy || policy.mode === 'none' || !host) return { kind: 'use', tls: fallback };
    const matches = policy.matches(host);
    if (policy.mode === 'testing') {
      return {
        kind: 'use',
        tls: {
          ...fallback,
          policy: 'mta-sts',
          stsMatched: matches,
          note: matches ? 'mta-sts testing' : `mta-sts testing: ${host} does not match the policy's mx`,
        },
      };
    }
    if (!matches) {
      // RFC 8461 §4.1: a host not matching the policy's mx patterns is not a valid MX.
      return {
        kind: 'skip',
        policy: 'mta-sts',
        result: 'validation-failure',
        reply: localReplies.tlsPolicy(`${host} is not an MX allowed by the MTA-STS policy of ${domain}`),
      };
    }
    // RFC 8461 §4.2: TLS with a PKIX-valid certificate for the MX host name (Node checks the name via SNI).
    return {
      kind: 'use',
      tls: {
        policy: 'mta-sts',
        outcome: 'mta-sts',
        stsMatched: true,
        policyKey: `mta-sts:${host}`,
        session: {
          requireTls: true,
          ignoreTlsErrors: false,
          ...(deps.ca ? { ca: deps.ca } : {}),
          // Node verified the chain and the name (rejectUnauthorized); checked again explicitly here.
          verifyPeer: (socket) => pkixProblem(socket, host),
        },
      },
    };
  };
  const forHost = async (candidate: Candidate) => reported(await decide(candidate));
  return { kind: 'plan', tls: { forHost, mxSecure } };
}

/** RFC 7672 §2.2.2-2.2.3 for one MX host: DANE, no DANE ('none'), or skip the host. */
/**
 * RFC 7672 §2.2.2 for a transport or relay host the operator configured by
 * name: when its address records are DNSSEC-secure and TLSA records exist at
 * _<port>._tcp.<host>, the session is DANE-authenticated like an MX one, and
 * it is opened with the validated address (the name goes to SNI and the
 * DANE-TA name check). Insecure or no TLSA: the configured default.
 */
function transportDane(
  route: Extract<Route, { kind: 'smtp' }>,
  dns: SecureDns,
  fallback: HostTls,
): DestinationTls {
  return {
    async forHost(candidate) {
      const dane = await daneFor(dns, route.host, route.host, route.port);
      if (dane.kind === 'none') return { kind: 'use', tls: fallback };
      const report: ReportedPolicy = { type: 'tlsa', domain: route.host, strings: dane.tlsa };
      if (dane.kind === 'skip') return { ...dane, report };
      const ip = dane.addresses[0];
      const connect = ip
        ? { ...candidate, host: ip, servername: route.host, label: `${route.host}[${ip}]:${route.port}` }
        : undefined;
      return { ...dane, report, ...(connect ? { connect } : {}) };
    },
  };
}

type DaneFound =
  | (Extract<HostDecision, { kind: 'use' }> & { tlsa: string[]; addresses: string[] })
  | (Extract<HostDecision, { kind: 'skip' }> & { tlsa: string[] })
  | { kind: 'none' };

/**
 * RFC 7672 §2.2.2-2.2.3 for one host: its address records must be secure;
 * when they come through a (secure) CNAME chain, TLSA records are looked up
 * at the expanded name first and at the original name when the expanded one
 * has none. A TLSA RRset that is itself behind a CNAME is followed by the
 * resolver and validated as a whole (RFC 7671 §7).
 */
async function daneFor(dns: SecureDns, host: string, domain: string, port = SMTP_PORT): Promise<DaneFound> {
  const addresses = await dns.addresses(host);
  if (failed(addresses.rcode)) {
    return {
      kind: 'skip',
      policy: 'dane',
      result: 'dnssec-invalid',
      reply: localReplies.tlsPolicy(`address of ${host} could not be validated (${addresses.detail})`),
      tlsa: [],
    };
  }
  if (!addresses.secure) return { kind: 'none' };
  const bases = addresses.canonical ? [addresses.canonical, host] : [host];
  let tlsa: TlsaAnswer | undefined;
  for (const base of bases) {
    const answer = await dns.tlsa(`_${port}._tcp.${base}`);
    if (failed(answer.rcode)) {
      return {
        kind: 'skip',
        policy: 'dane',
        result: 'tlsa-invalid',
        reply: localReplies.tlsPolicy(`TLSA of ${base} could not be validated (${answer.detail})`),
        tlsa: [],
      };
    }
    if (answer.secure && answer.records.length > 0) {
      tlsa = answer;
      break;
    }
  }
  if (!tlsa) return { kind: 'none' };
  // RFC 7672 §3.2.2: with a CNAME the expanded name is a reference identifier too.
  const names = [...new Set([host, ...(addresses.canonical ? [addresses.canonical] : []), domain])];
  const strings = tlsa.records.map(tlsaString);
  const usable = tlsa.records.filter(isUsableTlsa);
  if (usable.length === 0) {
    // RFC 7672 §2.2: only unusable TLSA records: TLS is still mandatory, unauthenticated.
    return {
      kind: 'use',
      tls: {
        policy: 'dane',
        outcome: 'tls',
        policyKey: 'dane-unusable',
        session: { requireTls: true, ignoreTlsErrors: true },
      },
      tlsa: strings,
      addresses: addresses.records,
    };
  }
  return {
    kind: 'use',
    tls: {
      policy: 'dane',
      outcome: 'dane',
      policyKey: `dane:${usable.map(tlsaString).sort().join(',')}`,
      session: {
        requireTls: true,
        // Node's PKIX check is off; dane-verify.ts is the authentication (names included for DANE-TA).
        ignoreTlsErrors: true,
        verifyPeer: (socket) => daneVerifier(socket, usable, names),
      },
    },
    tlsa: strings,
    addresses: addresses.records,
  };
}

/** A TLSA record as its presentation text (RFC 6698 §2.2), e.g. "3 1 1 ab12...". */
function tlsaString(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

/** RFC 8461 §4.2: a PKIX-valid chain and the MX host name in the certificate (RFC 6125). */
export function pkixProblem(socket: TLSSocket, host: string): string | undefined {
  if (!socket.authorized) return `certificate not trusted: ${String(socket.authorizationError)}`;
  const err = checkServerIdentity(host, socket.getPeerCertificate());
  return err ? err.message : undefined;
}

function daneVerifier(
  socket: Parameters<NonNullable<SessionOptions['verifyPeer']>>[0],
  tlsa: TlsaRecord[],
  names: string[],
): string | undefined {
  const { chain, leafDetail } = peerChain(socket);
  return verifyDaneChain(chain, leafDetail, { tlsa, names });
}
