/** @sluice/bus: NATS JetStream transport for Sluice services (see types.ts for the contract). */

export { BACKPRESSURE_FIRST_PAUSE_MS, isFullError } from './backpressure.ts';
export {
  BodyUnavailableError,
  inlineLimit,
  OBJECT_CHUNK_BYTES,
  PAYLOAD_HEADROOM_BYTES,
  STREAM_BUFFER_BYTES,
} from './body-store.ts';
export { Bus } from './bus.ts';
export { type BusLog, silentBusLog } from './bus-log.ts';
export { type BusConfig, busConfigFrom, DEAD_LETTER_RETENTION_MS, defaultBusConfig } from './config.ts';
export type { ConnectionState } from './connection-state.ts';
export {
  type ConsumeOptions,
  ERROR_BACKOFF_BASE_MS,
  ERROR_BACKOFF_MAX_MS,
  errorBackoffMs,
  FULL_STREAM_NAK_MS,
} from './consume.ts';
export { headerSafeReason } from './dead-letter.ts';
export { EVENT_CONTENT, EVENT_WINDOW } from './event-log.ts';
export {
  assertLedgerKey,
  InvalidLedgerKeyError,
  type LedgerHold,
  ledgerKey,
  legacyLedgerKey,
} from './ledger.ts';
export {
  type NatsOperationCount,
  type NatsOperationKind,
  NatsOperations,
  type NatsOperationsSnapshot,
  NO_STAGE,
  sequentialCount,
} from './nats-operations.ts';
export {
  type NatsServerHandle,
  type NatsServerOptions,
  NatsServerStartError,
  renderNatsConfig,
  spawnNatsServer,
  waitForJetStream,
} from './nats-server.ts';
export { ENVELOPE_CONTENT, toPublishError } from './publish.ts';
export { type ConsumerLag, MAX_TIMELINE_EVENTS } from './queue-inspection.ts';
export { RPC_ERROR_CONTENT, RpcError, type RpcErrorCode } from './rpc.ts';
export { SESSION_RATE_KEY_TTL_MS, SessionCountContended } from './session-rate-store.ts';
export type { SharedTable, TableRow } from './shared-table.ts';
export { StageBus } from './stage-bus.ts';
export {
  BYTES_PER_MESSAGE,
  divideStoreBudget,
  embeddedStoreBudget,
  type ObjectLimits,
  STORE_SHARES,
  type StoreLimits,
} from './store-budget.ts';
export type { StoreRoom } from './store-guard.ts';
export { type TopologyReport, wantedConsumer, wantedStream } from './topology.ts';
export { extractTraceContext, headersToRecord, injectTraceHeaders } from './trace-headers.ts';
export * from './types.ts';
