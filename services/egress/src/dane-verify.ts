/**
 * Checks a TLS peer's certificate chain against TLSA records (DANE,
 * RFC 6698, RFC 7671, for SMTP RFC 7672). The session is opened with
 * rejectUnauthorized false (DANE does not use the WebPKI), so NOTHING is
 * checked by Node: this module is the whole authentication.
 *
 *   - DANE-EE(3): the leaf's certificate (selector 0) or public key (1)
 *     matches, exactly (matching type 0), by SHA-256 (1) or SHA-512 (2).
 *     No name and no validity-date checks (RFC 7672 §3.1.1, RFC 7671 §5.1).
 *   - DANE-TA(2): a certificate the server sent as an issuer matches; the
 *     chain from the leaf up to it must verify (signatures and issuer names),
 *     the leaf be within its validity dates and carry one of the reference
 *     identifiers: the MX host name or the next-hop domain (RFC 7672 §3.2.2,
 *     checked with tls.checkServerIdentity: wildcards as RFC 6125 §6.4.3).
 *   - PKIX-TA(0)/PKIX-EE(1) and unknown parameters are "unusable" for SMTP
 *     (RFC 7672 §3.1.3) and were filtered out before (dane-policy.ts).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import type { TlsaRecord } from '@sluice/dns';

export const DANE_TA = 2;
export const DANE_EE = 3;

/** RFC 7672 §3.1.3: only DANE-TA(2) and DANE-EE(3), selectors 0/1, matching types 0/1/2 are usable. */
export function isUsableTlsa(r: TlsaRecord): boolean {
  return (r.usage === DANE_TA || r.usage === DANE_EE) && r.selector <= 1 && r.matchingType <= 2;
}

/** RFC 6698 §2.1.2-2.1.3: the selected content, then its matching-type digest. */
export function tlsaMatches(r: TlsaRecord, cert: X509Certificate): boolean {
  const selected =
    r.selector === 0 ? cert.raw : (cert.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  const digest =
    r.matchingType === 0
      ? selected
      : createHash(r.matchingType === 1 ? 'sha256' : 'sha512')
          .update(selected)
          .digest();
  return digest.equals(r.data);
}

/** The certificates the peer presented, leaf first. */
export function peerChain(socket: TLSSocket): {
  chain: X509Certificate[];
  leafDetail?: DetailedPeerCertificate;
} {
  const leafDetail = socket.getPeerCertificate(true);
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = leafDetail?.raw ? leafDetail : undefined;
  while (c?.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return { chain, leafDetail: leafDetail?.raw ? leafDetail : undefined };
}

export interface DaneCheck {
  tlsa: readonly TlsaRecord[];
  /** Reference identifiers for DANE-TA: the MX host name and the next-hop domain (RFC 7672 §3.2.2). */
  names: readonly string[];
  now?: Date;
}

/** undefined when the chain is authenticated by a TLSA record; otherwise why not. */
export function verifyDaneChain(
  chain: readonly X509Certificate[],
  leafDetail: DetailedPeerCertificate | undefined,
  check: DaneCheck,
): string | undefined {
  const leaf = chain[0];
  if (!leaf) return 'the server presented no certificate';
  const usable = check.tlsa.filter(isUsableTlsa);
  // DANE-EE: the leaf alone; names and dates are not checked (RFC 7672 §3.1.1).
  if (usable.some((r) => r.usage === DANE_EE && tlsaMatches(r, leaf))) return undefined;

  const taRecords = usable.filter((r) => r.usage === DANE_TA);
  let lastProblem = 'no TLSA record matches the certificate chain';
  for (let i = 1; i < chain.length; i++) {
    if (!taRecords.some((r) => tlsaMatches(r, chain[i]!))) continue;
    const problem = chainProblem(chain.slice(0, i + 1), check.now ?? new Date());
    if (problem) {
      lastProblem = problem;
      continue;
    }
    const nameProblem = nameMismatch(leafDetail, check.names);
    if (nameProblem) return nameProblem;
    return undefined;
  }
  return lastProblem;
}

/** Each certificate issued and signed by the next one; the leaf within its dates. */
function chainProblem(chain: readonly X509Certificate[], now: Date): string | undefined {
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      return `certificate "${child.subject.replace(/\n/g, ', ')}" is not signed by the DANE-TA trust anchor's chain`;
    }
  }
  const leaf = chain[0]!;
  if (now < new Date(leaf.validFrom) || now > new Date(leaf.validTo)) {
    return `the server certificate is outside its validity period (${leaf.validFrom} - ${leaf.validTo})`;
  }
  return undefined;
}

function nameMismatch(
  leafDetail: DetailedPeerCertificate | undefined,
  names: readonly string[],
): string | undefined {
  if (!leafDetail) return 'no certificate details to check the name';
  for (const name of names) {
    if (!checkServerIdentity(name, leafDetail)) return undefined;
  }
  return `the certificate is not for ${names.join(' or ')} (DANE-TA name check, RFC 7672 §3.2.2)`;
}
