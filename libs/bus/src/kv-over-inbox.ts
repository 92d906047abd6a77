/**
 * A KV bucket's read of one key and "create unless the key has a value",
 * made directly on the JetStream subjects through the bus' reply inbox
 * (reply-inbox.ts) instead of @nats-io/kv, for the KV operations on the
 * message path (the egress ledger: one read and one write per delivered
 * recipient, decision 0044).
 *
 * @nats-io/kv does both through nats.js' request(), which builds an Error
 * with a stack on every call even when it succeeds, and reads a key that does
 * not exist yet (the usual case for the ledger) as a JetStreamApiError "no
 * message found" that it then catches. Here a read or a write is one publish
 * on the shared inbox; an error is built only when something failed.
 *
 * Same wire operations and answers as @nats-io/kv 3.4 on a bucket opened
 * with Kvm.open (which reads through the stream leader, not direct gets):
 *   - read: `$JS.API.STREAM.MSG.GET.KV_<bucket>` with
 *     `{"last_by_subj":"$KV.<bucket>.<key>"}`; "no message found" (10037)
 *     is no entry; a message with a KV-Operation header (DEL, PURGE) is a
 *     delete/purge marker, returned as such (the caller treats it as none).
 *   - create: a publish to `$KV.<bucket>.<key>` with
 *     Nats-Expected-Last-Subject-Sequence: 0, awaited on its PubAck. If the
 *     stream refuses it for a wrong last sequence (10071, 10164) or gives no
 *     answer, the key is read: a delete/purge marker is written over (expected
 *     sequence: the marker's), anything else fails with the first error.
 * Errors are what callers saw before: TimeoutError, "jetstream is not enabled"
 * (no responders), and JetStream API errors named JetStreamApiError carrying
 * the server's description ("insufficient resources", ...).
 */
import { errors, headers as natsHeaders } from '@nats-io/transport-node';
import { headerNames, kvNames } from '@sluice/proto';
import {
  type JetStreamApiErrorBody,
  JetStreamPublishError,
  jetStreamError,
  type ReplyInbox,
} from './reply-inbox.ts';

/** One stored message of a key: a value (PUT) or a delete/purge marker. */
export interface KvRecord {
  /** The stream sequence of the message (the key's revision). */
  revision: number;
  operation: 'PUT' | 'DEL' | 'PURGE';
  value: Uint8Array;
}

/** What the ledger needs of a bucket. */
export interface KvKeyStore {
  /** The key's last message (value or marker), or null when it has none. */
  get(key: string): Promise<KvRecord | null>;
  /** Store `value` unless the key holds a value (a marker is written over); the new revision. */
  create(key: string, value: Uint8Array): Promise<number>;
}

/** JetStream error codes (nats-server errors.json). */
const NO_MESSAGE_FOUND = 10037;
const WRONG_LAST_SEQUENCE = 10071;
const WRONG_LAST_SEQUENCE_UNKNOWN = 10164;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface MessageGetReply {
  message?: { subject: string; seq: number; hdrs?: string; data?: string };
  error?: JetStreamApiErrorBody;
}

/** A bucket's keys read and created through `inbox`, each call bounded by `timeoutMs`. */
export function kvOverInbox(inbox: ReplyInbox, bucket: string, timeoutMs: number): KvKeyStore {
  const stream = kvNames.stream(bucket);
  const getSubject = kvNames.messageGet(stream);

  async function get(key: string): Promise<KvRecord | null> {
    const subject = kvNames.subject(bucket, key);
    const query = encoder.encode(JSON.stringify({ last_by_subj: subject }));
    let reply: MessageGetReply;
    try {
      reply = JSON.parse(decoder.decode((await inbox.request(getSubject, query, { timeoutMs })).data));
    } catch (err) {
      throw noResponders(err, getSubject);
    }
    if (reply.error) {
      if (reply.error.err_code === NO_MESSAGE_FOUND) return null;
      throw jetStreamError(reply.error);
    }
    const m = reply.message;
    if (!m || m.subject !== subject) return null;
    return {
      revision: m.seq,
      operation: operationOf(m.hdrs),
      value: m.data ? Buffer.from(m.data, 'base64') : new Uint8Array(0),
    };
  }

  async function put(key: string, value: Uint8Array, expectedLastSeq: number): Promise<number> {
    const headers = natsHeaders();
    headers.set(headerNames.expectedLastSubjectSequence, String(expectedLastSeq));
    const ack = await inbox.publish(kvNames.subject(bucket, key), value, { headers, timeout: timeoutMs });
    return ack.seq;
  }

  async function create(key: string, value: Uint8Array): Promise<number> {
    try {
      return await put(key, value, 0);
    } catch (err) {
      const wrongSequence =
        err instanceof JetStreamPublishError &&
        (err.errCode === WRONG_LAST_SEQUENCE || err.errCode === WRONG_LAST_SEQUENCE_UNKNOWN);
      if (err instanceof JetStreamPublishError && !wrongSequence) throw err;
      const last = await get(key);
      if (last === null || last.operation === 'PUT') throw err;
      return put(key, value, last.revision);
    }
  }

  return { get, create };
}

/** The KV-Operation of a stored message from its base64 NATS header block ("PUT" without one). */
function operationOf(hdrs: string | undefined): KvRecord['operation'] {
  if (!hdrs) return 'PUT';
  const name = headerNames.kvOperation.toLowerCase();
  for (const line of Buffer.from(hdrs, 'base64').toString('utf8').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === name) {
      const op = line.slice(colon + 1).trim();
      return op === 'DEL' || op === 'PURGE' ? op : 'PUT';
    }
  }
  return 'PUT';
}

/** A request nobody answered: what the JetStream manager said (no stream, or JetStream down). */
function noResponders(err: unknown, subject: string): unknown {
  if (err instanceof errors.NoRespondersError) {
    return new Error(`jetstream is not enabled: no responders on ${subject}`, { cause: err });
  }
  return err;
}
