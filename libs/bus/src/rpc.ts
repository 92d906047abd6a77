/**
 * Request/reply over core NATS, for decisions the ingress needs inside the
 * SMTP session (the before-queue verdict, the RCPT-time lookup). Servers join
 * a queue group, so replicas share the load and a request goes to exactly one.
 * Requests carry W3C trace headers and the requester's deadline
 * (headerNames.deadline, epoch ms); the server runs its handler in a SERVER
 * span under that context. A handler failure answers a small JSON error
 * (proto rpcErrorSchema) marked with the Sluice-Content header, which the
 * requesting side turns into an RpcError, as it does timeouts and "no
 * responders", so the ingress can answer 451 with a clear log line.
 * With opts.maxQueued, a request arriving while every handler slot is busy
 * and maxQueued requests already wait is answered at once with an empty
 * reply marked headerNames.busy (never queued without bound); the requester
 * gets RpcError code 'busy' and may ask again, which a queue group routes to
 * a random member, usually another replica (docs/filter.md "Load and shedding").
 * Requests go over the bus' shared reply inbox (reply-inbox.ts). Requests
 * and replies are counted (nats-operations.ts); each request a server
 * answers is one message path of its stage.
 * A server in the same process as its requester can also answer without
 * NATS (`answerInProcess`, used by in-process-handover.ts): under the same
 * concurrency limit, in the same SERVER span and message path, with the same
 * RpcError for a failing handler; when every slot is busy it declines, and
 * the request goes over NATS (where the queue group may find another replica).
 */
import {
  errors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from '@nats-io/transport-node';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { headerNames } from '@sluice/proto';
import type { BusLog } from './bus-log.ts';
import { ConcurrencyLimit } from './concurrency-limit.ts';
import { inSpan, SpanKind } from './messaging-spans.ts';
import { type NatsOperations, NO_STAGE } from './nats-operations.ts';
import type { ReplyInbox } from './reply-inbox.ts';
import { extractTraceContext, headersToRecord, injectTraceHeaders } from './trace-headers.ts';
import type { RpcRequest, RpcServeOptions, RpcServer } from './types.ts';

/** Sluice-Content of an error reply; its body matches proto rpcErrorSchema. */
export const RPC_ERROR_CONTENT = 'rpc-error/v1';

export type RpcErrorCode = 'timeout' | 'no_responders' | 'remote' | 'failed' | 'busy';

/** A request that got no usable answer. */
export class RpcError extends Error {
  override name = 'RpcError';
  readonly code: RpcErrorCode;
  readonly subject: string;
  constructor(message: string, opts: { code: RpcErrorCode; subject: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.code = opts.code;
    this.subject = opts.subject;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An RPC server that can also answer a request made in its own process. */
export interface LocalRpcServer extends RpcServer {
  /**
   * Answer without NATS when a handler slot is free now (and the server is not stopping);
   * undefined otherwise, and the caller sends the request over NATS.
   */
  answerInProcess(data: Uint8Array, timeoutMs: number): Promise<Uint8Array> | undefined;
}

export function serve(
  nc: NatsConnection,
  log: BusLog,
  ops: NatsOperations,
  subject: string,
  queue: string,
  opts: RpcServeOptions,
  handler: (req: RpcRequest) => Promise<Uint8Array>,
): LocalRpcServer {
  const stage = opts.stage ?? NO_STAGE;
  const respond = (msg: Msg, data: Uint8Array, hdrs?: MsgHdrs) => {
    ops.count('reply', stage);
    msg.respond(data, hdrs ? { headers: hdrs } : undefined);
  };
  const limit = new ConcurrencyLimit(opts.concurrency);
  const inFlight = new Set<Promise<void>>();
  const sub: Subscription = nc.subscribe(subject, { queue });

  const maxQueued = opts.maxQueued;
  let waiting = 0;
  const setWaiting = (n: number) => {
    waiting = n;
    opts.onQueueLength?.(n);
  };
  const shed = (msg: Msg) => {
    opts.onShed?.();
    if (!msg.reply) return;
    const hdrs = natsHeaders();
    hdrs.set(headerNames.busy, '1');
    respond(msg, new Uint8Array(0), hdrs);
  };
  const loop = (async () => {
    for await (const msg of sub) {
      if (maxQueued === undefined) {
        await limit.acquire();
      } else if (limit.active >= opts.concurrency && waiting >= maxQueued) {
        shed(msg);
        continue;
      }
      const run = async () => {
        if (maxQueued !== undefined && limit.active >= opts.concurrency) {
          // Every slot is busy: wait in the bounded queue (counted, so the next arrival can be shed).
          setWaiting(waiting + 1);
          try {
            await limit.acquire();
          } finally {
            setWaiting(waiting - 1);
          }
        } else if (maxQueued !== undefined) {
          await limit.acquire(); // a slot is free: taken synchronously
        }
        try {
          await ops.path(stage, () => answer(msg, subject, queue, log, respond, handler));
        } finally {
          limit.release();
        }
      };
      const p = run();
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  })();

  let stopped: Promise<void> | null = null;
  const answerInProcess = (data: Uint8Array, timeoutMs: number): Promise<Uint8Array> | undefined => {
    if (stopped || limit.active >= opts.concurrency) return undefined;
    void limit.acquire(); // a slot is free: taken synchronously
    const p = ops
      .path(stage, () => answerLocal(data, timeoutMs, subject, queue, log, handler))
      .finally(() => limit.release());
    const settled = p.then(
      () => {},
      () => {},
    );
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
    return p;
  };
  return {
    answerInProcess,
    stop() {
      stopped ??= (async () => {
        // Drain: no new requests reach us; those already delivered are still answered.
        if (!sub.isClosed()) await sub.drain().catch(() => {});
        await loop;
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        if (!nc.isClosed()) await nc.flush().catch(() => {});
      })();
      return stopped;
    },
  };
}

/** The OpenTelemetry messaging attributes of a request's SERVER span. */
function serverSpanAttributes(subject: string, queue: string, bytes: number) {
  return {
    'messaging.system': 'nats',
    'messaging.operation.type': 'process',
    'messaging.destination.name': subject,
    'messaging.consumer.group.name': queue,
    'messaging.message.body.size': bytes,
  };
}

async function answer(
  msg: Msg,
  subject: string,
  queue: string,
  log: BusLog,
  respond: (msg: Msg, data: Uint8Array, hdrs?: MsgHdrs) => void,
  handler: (req: RpcRequest) => Promise<Uint8Array>,
): Promise<void> {
  const parent = extractTraceContext(msg.headers, ROOT_CONTEXT);
  await inSpan(
    `process ${subject}`,
    {
      kind: SpanKind.SERVER,
      parent,
      attributes: serverSpanAttributes(subject, queue, msg.data.length),
    },
    async () => {
      if (!msg.reply) {
        log.warn({ subject }, 'request without a reply subject ignored');
        return;
      }
      let reply: Uint8Array;
      try {
        reply = await handler({ data: msg.data, headers: headersToRecord(msg.headers) });
      } catch (err) {
        log.error({ subject, err }, 'request handler failed');
        const hdrs = natsHeaders();
        hdrs.set(headerNames.contentType, RPC_ERROR_CONTENT);
        respond(
          msg,
          encoder.encode(JSON.stringify({ v: 1, error: (err as Error).message ?? String(err) })),
          hdrs,
        );
        throw err; // marks the span as failed
      }
      respond(msg, reply);
    },
  ).catch(() => {});
}

/** One request answered in this process: the SERVER span and errors of `answer`, no NATS. */
async function answerLocal(
  data: Uint8Array,
  timeoutMs: number,
  subject: string,
  queue: string,
  log: BusLog,
  handler: (req: RpcRequest) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  return inSpan(
    `process ${subject}`,
    {
      kind: SpanKind.SERVER,
      attributes: { ...serverSpanAttributes(subject, queue, data.length), 'sluice.in_process': true },
    },
    async () => {
      // The handler sees what it would over NATS: the requester's deadline and trace context.
      const headers: Record<string, string> = headersToRecord(injectTraceHeaders());
      headers[headerNames.deadline] = String(Date.now() + timeoutMs);
      try {
        return await handler({ data, headers });
      } catch (err) {
        log.error({ subject, err }, 'request handler failed');
        throw new RpcError(`${subject} failed: ${(err as Error).message ?? String(err)}`, {
          code: 'remote',
          subject,
        });
      }
    },
  );
}

export function request(
  inbox: Pick<ReplyInbox, 'request'>,
  subject: string,
  data: Uint8Array,
  timeoutMs: number,
  ready?: (timeoutMs: number) => Promise<boolean>,
  count: <T>(op: () => Promise<T>) => Promise<T> = (op) => op(),
): Promise<Uint8Array> {
  return inSpan(
    `request ${subject}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'send',
        'messaging.destination.name': subject,
        'messaging.message.body.size': data.length,
      },
    },
    async () => {
      const deadline = Date.now() + timeoutMs;
      // A request written while disconnected is dropped by the client: wait for the link first.
      if (ready && !(await ready(timeoutMs))) {
        throw new RpcError(`no reply on ${subject} within ${timeoutMs} ms (NATS disconnected)`, {
          code: 'timeout',
          subject,
        });
      }
      let reply: Msg;
      try {
        const timeout = Math.max(1, deadline - Date.now());
        // The server sees our deadline and can give up (or cut its own waits) instead of working for nobody.
        const headers = injectTraceHeaders();
        headers.set(headerNames.deadline, String(deadline));
        reply = await count(() => inbox.request(subject, data, { timeoutMs: timeout, headers }));
      } catch (err) {
        throw toRpcError(err, subject, timeoutMs);
      }
      if (reply.headers?.get(headerNames.busy) === '1') {
        throw new RpcError(`${subject} is busy (all handler slots and its wait queue full)`, {
          code: 'busy',
          subject,
        });
      }
      if (reply.headers?.get(headerNames.contentType) === RPC_ERROR_CONTENT) {
        let message = 'unknown error';
        try {
          message = String((JSON.parse(decoder.decode(reply.data)) as { error?: unknown }).error ?? message);
        } catch {
          // keep the generic message
        }
        throw new RpcError(`${subject} failed: ${message}`, { code: 'remote', subject });
      }
      return reply.data;
    },
  );
}

function toRpcError(err: unknown, subject: string, timeoutMs: number): RpcError {
  if (err instanceof errors.TimeoutError) {
    return new RpcError(`no reply on ${subject} within ${timeoutMs} ms`, {
      code: 'timeout',
      subject,
      cause: err,
    });
  }
  if (
    err instanceof errors.NoRespondersError ||
    (err instanceof errors.RequestError && err.isNoResponders())
  ) {
    return new RpcError(`no service answers on ${subject}`, { code: 'no_responders', subject, cause: err });
  }
  return new RpcError(`request on ${subject} failed: ${(err as Error).message}`, {
    code: 'failed',
    subject,
    cause: err,
  });
}
