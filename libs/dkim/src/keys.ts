/**
 * DKIM keys: loaded once at start from configuration (PEM, usually a
 * Kubernetes secret mounted as a file), checked, and grouped per domain.
 * Several selectors per domain may be listed; the `active` ones sign (at
 * most one RSA and one Ed25519 per domain, for the dual signature of
 * RFC 8463 §5), the others are kept so a rotation is: publish the new
 * selector, list it inactive, switch `active`, and remove the old key and its
 * DNS record after the mail signed with it has been delivered (docs/dkim.md).
 *
 * Bad keys fail at start naming the key (`dkim.keys[2] (s1._domainkey.example.org)`):
 * unreadable PEM, an unsupported type, RSA shorter than 1024 bits (RFC 8301 §3.2),
 * two active keys of one type for a domain.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

export type DkimKeyType = 'rsa' | 'ed25519';

export interface DkimKeyConfig {
  domain: string;
  selector: string;
  /** PEM (PKCS#8 or PKCS#1). */
  privateKey: string;
  active: boolean;
}

export interface DkimKey {
  domain: string;
  selector: string;
  type: DkimKeyType;
  active: boolean;
  key: KeyObject;
  /** RSA modulus length; 256 for Ed25519. */
  bits: number;
  /** The config entry, for messages: "dkim.keys[0] (sel._domainkey.example.org)". */
  name: string;
}

export class DkimKeyError extends Error {
  override name = 'DkimKeyError';
}

export interface DkimKeyring {
  keys: readonly DkimKey[];
  /** The active keys of a domain (lower case), RSA first; empty if none. */
  activeFor(domain: string): DkimKey[];
  /** A key by domain and selector. */
  find(domain: string, selector: string): DkimKey | undefined;
}

export function loadDkimKey(entry: DkimKeyConfig, name: string): DkimKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(entry.privateKey);
  } catch (err) {
    throw new DkimKeyError(
      `${name}: not a readable PEM private key (${(err as Error).message}) — give the key file`,
    );
  }
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') {
    throw new DkimKeyError(`${name}: ${type} keys cannot sign DKIM — use RSA (2048 bits) or Ed25519`);
  }
  const bits = type === 'rsa' ? (key.asymmetricKeyDetails?.modulusLength ?? 0) : 256;
  if (type === 'rsa' && bits < 1024) {
    throw new DkimKeyError(
      `${name}: RSA key of ${bits} bits; RFC 8301 requires at least 1024 — make a 2048-bit key`,
    );
  }
  return {
    domain: entry.domain.toLowerCase(),
    selector: entry.selector,
    type,
    active: entry.active,
    key,
    bits,
    name,
  };
}

export function buildKeyring(entries: readonly DkimKeyConfig[], path = 'dkim.keys'): DkimKeyring {
  const keys = entries.map((e, i) =>
    loadDkimKey(e, `${path}[${i}] (${e.selector}._domainkey.${e.domain.toLowerCase()})`),
  );
  const active = new Map<string, DkimKey>();
  for (const k of keys) {
    if (!k.active) continue;
    const slot = `${k.domain}/${k.type}`;
    const other = active.get(slot);
    if (other) {
      throw new DkimKeyError(
        `${k.name} and ${other.name} are both active ${k.type} keys of ${k.domain} — set active: false on one`,
      );
    }
    active.set(slot, k);
  }
  return {
    keys,
    activeFor(domain) {
      const d = domain.toLowerCase();
      return (['rsa', 'ed25519'] as const).flatMap((t) => {
        const k = active.get(`${d}/${t}`);
        return k ? [k] : [];
      });
    },
    find(domain, selector) {
      const d = domain.toLowerCase();
      return keys.find((k) => k.domain === d && k.selector === selector);
    },
  };
}

/** The public key as the p= of a DKIM key record (RFC 6376 §3.6.1; Ed25519: the raw 32 bytes, RFC 8463 §4.2). */
export function publicKeyData(key: KeyObject): string {
  const pub = createPublicKey(key);
  if (pub.asymmetricKeyType === 'ed25519') {
    const der = pub.export({ type: 'spki', format: 'der' });
    return der.subarray(der.length - 32).toString('base64');
  }
  return pub.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** The TXT record to publish at <selector>._domainkey.<domain>. */
export function dkimTxtRecord(key: Pick<DkimKey, 'type' | 'key'>): string {
  return `v=DKIM1; k=${key.type}; p=${publicKeyData(key.key)}`;
}
