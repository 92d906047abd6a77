/** @sluice/proto: the versioned contracts between Sluice services. */
export * from './codec.ts';
export * from './content-hash.ts';
export * from './dedup-ids.ts';
export * from './envelope.ts';
export * from './events.ts';
export * from './part-id.ts';
export * from './queue-id.ts';
export * from './rpc.ts';
export * from './subjects.ts';
