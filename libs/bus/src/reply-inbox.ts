/**
 * Request/reply over one shared inbox subscription, for the bus' own requests
 * (RPCs) and JetStream publishes (a publish is a request whose reply is the
 * PubAck).
 *
 * nats.js' request() does the same on the wire, but on the way builds an
 * Error (a stack capture) for every request, even a successful one (its
 * "cancelled" clean-up), plus a timer promise and a race: in the foundation
 * benchmark the Error alone was ~4% of Sluice's CPU (docs/decisions/0010).
 * Here a request is a publish with a reply subject `<inbox>.<n>`, a pending
 * entry and one timer; errors are built only when something failed, as the
 * client's own types (TimeoutError, NoRespondersError), so callers that
 * classify them (toRpcError, toPublishError) see what they always saw.
 */
import {
  createInbox,
  errors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from '@nats-io/transport-node';
import { headerNames } from '@sluice/proto';

interface Pending {
  subject: string;
  resolve(msg: Msg): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const decoder = new TextDecoder();

/** A JetStream API error in a PubAck or an API reply (a full stream, a wrong expected sequence, ...). */
export class JetStreamPublishError extends Error {
  override name = 'JetStreamApiError';
  /** The status-like code (400, 404, 503). */
  readonly code: number;
  /** JetStream's own error code (10071: wrong last sequence, ...); 0 if the server sent none. */
  readonly errCode: number;
  constructor(description: string, code: number, errCode = 0) {
    super(description);
    this.code = code;
    this.errCode = errCode;
  }
}

/** The error part of a JetStream API reply or PubAck. */
export interface JetStreamApiErrorBody {
  code?: number;
  err_code?: number;
  description?: string;
}

export function jetStreamError(e: JetStreamApiErrorBody): JetStreamPublishError {
  return new JetStreamPublishError(e.description ?? 'error', e.code ?? 0, e.err_code ?? 0);
}

export class ReplyInbox {
  readonly #nc: NatsConnection;
  readonly #prefix = createInbox();
  readonly #pending = new Map<number, Pending>();
  #sub: Subscription | null = null;
  #next = 0;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /** Requests waiting for their reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Publish `data` with a reply subject and resolve with the reply; TimeoutError, NoRespondersError. */
  request(subject: string, data: Uint8Array, opts: { headers?: MsgHdrs; timeoutMs: number }): Promise<Msg> {
    this.#start();
    const token = ++this.#next;
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(token);
        reject(new errors.TimeoutError());
      }, opts.timeoutMs);
      this.#pending.set(token, { subject, resolve, reject, timer });
      try {
        this.#nc.publish(subject, data, { reply: `${this.#prefix}.${token}`, headers: opts.headers });
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(token);
        reject(err as Error);
      }
    });
  }

  /**
   * A JetStream publish: the stored message's sequence, or the stream's error. Same shape as
   * JetStreamClient.publish for what the bus uses (headers, timeout, msgID).
   */
  async publish(
    subject: string,
    data: Uint8Array,
    opts: { headers?: MsgHdrs; timeout: number; msgID?: string },
  ): Promise<{ seq: number; duplicate: boolean }> {
    let headers = opts.headers;
    if (opts.msgID) {
      headers ??= natsHeaders();
      headers.set(headerNames.msgId, opts.msgID);
    }
    let reply: Msg;
    try {
      reply = await this.request(subject, data, { headers, timeoutMs: opts.timeout });
    } catch (err) {
      if (err instanceof errors.NoRespondersError) {
        // What JetStreamClient.publish says when no stream listens on the subject.
        throw new Error(`jetstream is not enabled: no responders on ${subject}`, { cause: err });
      }
      throw err;
    }
    const ack = JSON.parse(decoder.decode(reply.data)) as {
      stream?: string;
      seq?: number;
      duplicate?: boolean;
      error?: JetStreamApiErrorBody;
    };
    if (ack.error) throw jetStreamError(ack.error);
    if (!ack.stream || typeof ack.seq !== 'number') throw new Error('invalid ack response');
    return { seq: ack.seq, duplicate: ack.duplicate === true };
  }

  /** Stop listening; requests still waiting fail at once. */
  close(): void {
    this.#sub?.unsubscribe();
    this.#sub = null;
    for (const [token, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(token);
      p.reject(new Error(`connection closing: no reply on ${p.subject}`));
    }
  }

  #start(): void {
    if (this.#sub) return;
    this.#sub = this.#nc.subscribe(`${this.#prefix}.*`, { callback: (_err, msg) => this.#onReply(msg) });
  }

  #onReply(msg: Msg): void {
    const token = Number(msg.subject.slice(this.#prefix.length + 1));
    const p = this.#pending.get(token);
    if (!p) return; // timed out already
    this.#pending.delete(token);
    clearTimeout(p.timer);
    // A status message without data: the server found no subscriber for the request subject.
    if (msg.data.length === 0 && msg.headers?.code === 503) p.reject(new errors.NoRespondersError(p.subject));
    else p.resolve(msg);
  }
}
