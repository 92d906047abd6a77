/**
 * Part ids from content. The resolver splits an envelope into one part per
 * route; a part's id is the queue id plus a digest of what the part IS — its
 * route key and its final recipients, sorted — never of its position in the
 * split. So after a routing change between a crash and the redelivery
 * (config reload, directory refresh, two replicas on different configs) a
 * part with other content gets another id and is published (not dropped as a
 * "duplicate" of the old part under the same Nats-Msg-Id), while the same
 * content still gets the same id and its republish is absorbed by JetStream's
 * duplicate window. See docs/decisions/0006-content-derived-identities.md.
 *
 *   <queue id>-<26 characters of Crockford base32>
 *
 * Valid as a NATS subject token and a KV key: [0-9A-Z] and "-" only.
 */
import { CONTENT_HASH_LENGTH, contentHash } from './content-hash.ts';

/** The id of the part of `queueId` going by `routeKey` to `recipients` (any order). */
export function partIdOf(queueId: string, routeKey: string, recipients: readonly string[]): string {
  const sorted = [...recipients].sort();
  return `${queueId}-${contentHash(['part', routeKey, sorted])}`;
}

/** The content suffix of a part id: CONTENT_HASH_LENGTH base32 characters. */
export const PART_SUFFIX_PATTERN = `[0-9A-Z]{${CONTENT_HASH_LENGTH}}`;

/**
 * Part ids of the first releases were numbered by position (`<queue id>-<n>`).
 * Envelopes carrying one can still be in a stream during an upgrade; readers
 * accept them (and the egress looks for their ledger entries, see its ledger.ts).
 */
export const LEGACY_PART_SUFFIX_PATTERN = '[0-9]{1,4}';

const LEGACY_PART_ID = new RegExp(`^[0-9A-Z]{10,40}-${LEGACY_PART_SUFFIX_PATTERN}$`);

/** True for a part id of the old positional form. */
export function isLegacyPartId(partId: string): boolean {
  return LEGACY_PART_ID.test(partId);
}
