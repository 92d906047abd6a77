/**
 * The delivery ledger as the egress reads it (RELIABILITY-NOTES §1, recipe 3):
 * one JetStream KV entry per (queue id, final recipient) that reached a final
 * outcome, written before the part is acked and read before every attempt, so
 * a redelivered part never goes to a recipient twice — also when a routing
 * change between a crash and the redelivery moved the recipient into another
 * part (decisions/0006). Keys come from the bus' ledgerKey
 * (`<queueId>.<first 128 bits of sha256(address)>`): the address itself
 * never appears in a key an operator may list.
 */
import { type BusClient, type LedgerEntry, ledgerKey, legacyLedgerKey } from '@sluice/bus';
import { type Envelope, isLegacyPartId } from '@sluice/proto';

export { ledgerKey };

/**
 * The ledger entries of these recipients of this message (null where there is
 * none), looked up in parallel. A part with a positional id (made by a
 * resolver of the first releases) is also looked up under the per-part key
 * those releases wrote.
 */
export async function ledgerEntries(
  bus: Pick<BusClient, 'ledgerGet'>,
  env: Pick<Envelope, 'id' | 'partId'>,
  addresses: readonly string[],
): Promise<Map<string, LedgerEntry | null>> {
  const legacyPart = env.partId !== undefined && isLegacyPartId(env.partId) ? env.partId : undefined;
  const entries = await Promise.all(
    addresses.map(async (a) => {
      const entry = await bus.ledgerGet(ledgerKey(env.id, a));
      if (entry !== null || legacyPart === undefined) return entry;
      return bus.ledgerGet(legacyLedgerKey(legacyPart, a));
    }),
  );
  return new Map(addresses.map((a, i) => [a, entries[i] ?? null]));
}
