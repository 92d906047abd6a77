/**
 * Who a relay connection is: the verified client certificate of a mutual-TLS
 * session (the TLS layer already refused a certificate that is not from
 * submission.relay.caFile, or expired), matched against the allow-list:
 * by SHA-256 fingerprint of the DER certificate (pins one certificate) or
 * by subject CN (any certificate the CA issues under that name). A
 * certificate the CA signed but the list does not name gets 554 5.7.1.
 */
import type { PeerCertificate } from '@sluice/proto';

export interface RelayClient {
  name: string;
  fingerprintSha256?: string;
  subjectCn?: string;
  senderDomains: string[];
  rateClass: 'default' | 'bulk';
}

/** What the TLS socket tells about the peer (node:tls getPeerCertificate()). */
export interface TlsPeer {
  subject?: Record<string, string | string[]>;
  issuer?: Record<string, string | string[]>;
  fingerprint256?: string;
}

/** "AA:BB:..." (node) -> "aabb..." (config, envelope). */
export function normalFingerprint(f: string): string {
  return f.replace(/:/g, '').toLowerCase();
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The distinguished name as OpenSSL prints it, "CN=a,O=b". */
function dn(name: Record<string, string | string[]> | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',');
}

/** The envelope's record of the certificate (proto peerCertificateSchema). */
export function peerCertificateOf(peer: TlsPeer): PeerCertificate | undefined {
  if (!peer.fingerprint256) return undefined;
  return {
    subject: dn(peer.subject).slice(0, 1024),
    fingerprintSha256: normalFingerprint(peer.fingerprint256),
    issuer: dn(peer.issuer).slice(0, 1024),
  };
}

/** The configured client this certificate is, or undefined. A fingerprint entry wins over a CN entry. */
export function matchRelayClient(peer: TlsPeer, clients: readonly RelayClient[]): RelayClient | undefined {
  const fp = peer.fingerprint256 ? normalFingerprint(peer.fingerprint256) : undefined;
  const cn = first(peer.subject?.['CN']);
  return (
    clients.find((c) => c.fingerprintSha256 !== undefined && c.fingerprintSha256 === fp) ??
    clients.find((c) => c.fingerprintSha256 === undefined && c.subjectCn !== undefined && c.subjectCn === cn)
  );
}
