/**
 * The steps of a DKIM key rotation, as text (pure), printed by
 * `sluice dkim rotate` after it made the next key. The order matters:
 *
 *   1. generate: the new key (done by the command) under a new selector;
 *   2. publish: its record at NEW._domainkey.D (RFC 6376 §3.6.2.1);
 *   3. wait: until every resolver can see it: the record's TTL, and the
 *      zone's negative-caching TTL (RFC 2308 §5) for resolvers that asked
 *      before it existed; Sluice itself checks the record before it signs
 *      with a key (dkim.dnsCheckInterval, services/rewriter/src/published-keys.ts)
 *      and sets a key aside while DNS shows another or none;
 *   4. activate: the new key active, the old one `active: false` (still
 *      listed, so it can be put back), reload;
 *   5. retire: keep the old record published while mail signed with it may
 *      still be verified (in queues, in forwards, re-checked by receivers:
 *      a week is customary, longer than any x= Sluice sets), then publish it
 *      with an empty p= (revoked, RFC 6376 §3.6.1) and remove the key from
 *      dkim.keys; delete the record later.
 *
 * At most one active key per domain and key type (config schema), so an RSA
 * and an Ed25519 key rotate separately.
 */

export interface RotationInput {
  domain: string;
  /** The next selector. */
  selector: string;
  /** The selector in use now, if known. */
  old?: string;
  type: 'rsa' | 'ed25519';
  keyFile: string;
  /** The new record in zone-file form (dkim-command.ts zoneRecord). */
  zoneRecord: string;
  /** TTL of the published record, seconds. */
  ttlSeconds: number;
}

function duration(seconds: number): string {
  if (seconds % 86400 === 0 && seconds > 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0 && seconds > 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0 && seconds > 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export function rotationSteps(r: RotationInput): string[] {
  const name = `${r.selector}._domainkey.${r.domain}`;
  const old = r.old ?? 'OLD';
  const oldName = `${old}._domainkey.${r.domain}`;
  return [
    `DKIM key rotation for ${r.domain} (${r.type}): ${old} -> ${r.selector}`,
    '',
    `1. generate: done, the private key of ${r.selector} is in ${r.keyFile} (mode 0600).`,
    '',
    `2. publish this record at ${name} (TTL ${r.ttlSeconds}):`,
    r.zoneRecord,
    '',
    `3. wait until it is visible everywhere: at least its TTL (${duration(r.ttlSeconds)}) and the zone's`,
    '   negative-caching TTL (SOA minimum, RFC 2308) after it answers at every authoritative server;',
    `   check: dig +short TXT ${name}`,
    '',
    `4. activate: in dkim.keys add { domain: ${r.domain}, selector: ${r.selector}, privateKey: { file: ${r.keyFile} }, active: true }`,
    `   and set ${old} to active: false (keep it listed), then reload. Sluice signs with ${r.selector} only once`,
    '   it finds this record in DNS (dkim.dnsCheckInterval); until then the key is set aside and logged.',
    '',
    `5. retire ${old} after about 7 days (mail signed with it is still being verified): publish`,
    `   ${oldName} as "v=DKIM1; p=" (revoked, RFC 6376 §3.6.1), remove ${old} from dkim.keys,`,
    '   and delete the record some weeks later.',
  ];
}
