/**
 * The delivery ledger as the egress reads it (RELIABILITY-NOTES §1, recipe 3):
 * one JetStream KV entry per (part, recipient) that reached a final outcome,
 * written before the part is acked and read before every attempt, so a
 * redelivered part never goes to a recipient twice. Keys come from the bus'
 * ledgerKey (`<partId>.<first 128 bits of sha256(address)>`): the address
 * itself never appears in a key an operator may list.
 */
import { type BusClient, type LedgerEntry, ledgerKey } from '@sluice/bus';

export { ledgerKey };

/** The ledger entries of these recipients (null where there is none), looked up in parallel. */
export async function ledgerEntries(
  bus: Pick<BusClient, 'ledgerGet'>,
  partId: string,
  addresses: readonly string[],
): Promise<Map<string, LedgerEntry | null>> {
  const entries = await Promise.all(addresses.map((a) => bus.ledgerGet(ledgerKey(partId, a))));
  return new Map(addresses.map((a, i) => [a, entries[i] ?? null]));
}
