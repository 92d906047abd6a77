/**
 * The bus as one service sees it: the same connection and guarantees as the
 * Bus it wraps, with every NATS operation counted under the service's stage
 * (sluice_nats_operations_total{stage}). The runtime hands each service its
 * own view (`bus.forStage(name)`), so the services' code does not change to
 * be measured.
 */

import type { Readable } from 'node:stream';
import type { BodyRef, ConsumerSpec, Envelope, SluiceEvent, StageName } from '@sluice/proto';
import type { Bus } from './bus.ts';
import type { StoredSnapshot } from './ldap-snapshot-store.ts';
import type { LedgerHold } from './ledger.ts';
import type { SharedTable } from './shared-table.ts';
import type { StoreRoom } from './store-guard.ts';
import type {
  AuthBuckets,
  BusClient,
  EnvelopeHandler,
  LedgerEntry,
  PublishHold,
  RpcRequest,
  RpcServeOptions,
  RpcServer,
  SharedTableBucket,
  StageConsumer,
  StoredBody,
} from './types.ts';

export class StageBus implements BusClient {
  readonly #bus: Bus;
  readonly stage: StageName;

  constructor(bus: Bus, stage: StageName) {
    this.#bus = bus;
    this.stage = stage;
  }

  get maxPayload(): number {
    return this.#bus.maxPayload;
  }

  storeBody(queueId: string, body: Uint8Array): Promise<StoredBody> {
    return this.#bus.storeBody(queueId, body, this.stage);
  }

  get inlineLimit(): number {
    return this.#bus.inlineLimit;
  }

  storeBodyStream(queueId: string, chunks: AsyncIterable<Uint8Array>): Promise<StoredBody> {
    return this.#bus.storeBodyStream(queueId, chunks, this.stage);
  }

  loadBody(env: Envelope, inline?: Uint8Array): Promise<Uint8Array> {
    return this.#bus.loadBody(env, inline, this.stage);
  }

  openBody(env: Envelope, inline?: Uint8Array): Promise<Readable> {
    return this.#bus.openBody(env, inline, this.stage);
  }

  deleteBody(ref: BodyRef): Promise<void> {
    return this.#bus.deleteBody(ref, this.stage);
  }

  publishEnvelope(
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    opts: { msgId: string; whileFull?: PublishHold },
  ): Promise<{ seq: number; duplicate: boolean }> {
    return this.#bus.publishEnvelope(subject, env, inline, { ...opts, stage: this.stage });
  }

  consumeEnvelopes(
    spec: ConsumerSpec,
    opts: { concurrency: number; handover?: boolean },
    handler: EnvelopeHandler,
  ): StageConsumer {
    return this.#bus.consumeEnvelopes(spec, opts, handler);
  }

  serve(
    subject: string,
    queue: string,
    opts: Omit<RpcServeOptions, 'stage'>,
    handler: (req: RpcRequest) => Promise<Uint8Array>,
  ): RpcServer {
    return this.#bus.serve(subject, queue, { ...opts, stage: this.stage }, handler);
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.#bus.request(subject, data, timeoutMs, this.stage);
  }

  recordEvent(event: SluiceEvent): Promise<void> {
    return this.#bus.recordEvent(event);
  }

  messagePath<T>(fn: () => Promise<T>): Promise<T> {
    return this.#bus.inPath(this.stage, fn);
  }

  deadLetter(
    stage: StageName,
    reason: string,
    data: Uint8Array,
    headers?: Record<string, string>,
  ): Promise<void> {
    return this.#bus.deadLetter(stage, reason, data, headers);
  }

  ledgerGet(key: string): Promise<LedgerEntry | null> {
    return this.#bus.ledgerGet(key, this.stage);
  }

  ledgerPut(key: string, entry: LedgerEntry, opts: { hold?: LedgerHold } = {}): Promise<LedgerEntry | null> {
    return this.#bus.ledgerPut(key, entry, { ...opts, stage: this.stage });
  }

  noteDedupId(msgId: string, entry: { queueId: string; duplicateOf?: string }): void {
    this.#bus.noteDedupId(msgId, entry, this.stage);
  }

  firstQueueIdOf(msgId: string, queueId: string): Promise<string | undefined> {
    return this.#bus.firstQueueIdOf(msgId, queueId, this.stage);
  }

  storeRoom(): Promise<StoreRoom> {
    return this.#bus.storeRoom();
  }

  greylistGet(key: string): Promise<{ value: string; revision: number } | null> {
    return this.#bus.greylistGet(key);
  }

  greylistCreate(key: string, value: string): Promise<boolean> {
    return this.#bus.greylistCreate(key, value);
  }

  greylistUpdate(key: string, value: string, revision: number): Promise<boolean> {
    return this.#bus.greylistUpdate(key, value, revision);
  }

  countIngressSession(key: string): Promise<number> {
    return this.#bus.countIngressSession(key, this.stage);
  }

  rateCounterGet(key: string): Promise<{ value: string; revision: number } | null> {
    return this.#bus.rateCounterGet(key, this.stage);
  }

  rateCounterCreate(key: string, value: string): Promise<boolean> {
    return this.#bus.rateCounterCreate(key, value, this.stage);
  }

  rateCounterUpdate(key: string, value: string, revision: number): Promise<boolean> {
    return this.#bus.rateCounterUpdate(key, value, revision, this.stage);
  }

  authBuckets(): Promise<AuthBuckets> {
    return this.#bus.authBuckets(this.stage);
  }

  ldapSnapshotGet(): Promise<StoredSnapshot | null> {
    return this.#bus.ldapSnapshotGet(this.stage);
  }

  ldapSnapshotPut(value: Uint8Array, expectedRevision: number): Promise<number | null> {
    return this.#bus.ldapSnapshotPut(value, expectedRevision, this.stage);
  }

  ldapSnapshotWatch(onSnapshot: (s: StoredSnapshot) => void): Promise<() => void> {
    return this.#bus.ldapSnapshotWatch(onSnapshot, this.stage);
  }

  sharedTable<T>(bucket: SharedTableBucket): SharedTable<T> {
    return this.#bus.sharedTable<T>(bucket, this.stage);
  }

  streamMessage(
    stream: string,
    seq: number,
  ): Promise<{ data: Uint8Array; headers: Record<string, string> } | null> {
    return this.#bus.streamMessage(stream, seq, this.stage);
  }

  deleteStreamMessage(stream: string, seq: number): Promise<boolean> {
    return this.#bus.deleteStreamMessage(stream, seq, this.stage);
  }

  mtaStsPolicyGet(domain: string): Promise<Uint8Array | null> {
    return this.#bus.mtaStsPolicyGet(domain, this.stage);
  }

  mtaStsPolicyPut(domain: string, value: Uint8Array): Promise<void> {
    return this.#bus.mtaStsPolicyPut(domain, value, this.stage);
  }

  tlsReportGet(key: string): Promise<{ value: string; revision: number } | null> {
    return this.#bus.tlsReportGet(key, this.stage);
  }

  tlsReportCreate(key: string, value: string): Promise<boolean> {
    return this.#bus.tlsReportCreate(key, value, this.stage);
  }

  tlsReportUpdate(key: string, value: string, revision: number): Promise<boolean> {
    return this.#bus.tlsReportUpdate(key, value, revision, this.stage);
  }

  tlsReportKeys(filter: string): Promise<string[]> {
    return this.#bus.tlsReportKeys(filter, this.stage);
  }
}
