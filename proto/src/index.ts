/** @sluice/proto: the versioned contracts between Sluice services. */
export * from './codec.ts';
export * from './envelope.ts';
export * from './events.ts';
export * from './queue-id.ts';
export * from './rpc.ts';
export * from './subjects.ts';
