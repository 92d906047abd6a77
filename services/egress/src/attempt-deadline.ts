/**
 * The deadline of one whole delivery attempt (egress.attemptTimeout). Every
 * protocol step has its own timeout (connect 30 s, greeting 300 s, each
 * command's inactivity 600 s: Postfix's smtp_connect_timeout,
 * smtp_helo_timeout, smtp_data_done_timeout), but a server that trickles one
 * byte now and then keeps each step alive forever; this bounds the sum.
 *
 * Steps that send nothing (DNS, the TLS policy, opening the body, opening a
 * session) are simply abandoned at the deadline: they are raced, and a session
 * that opens too late is given back. The transaction itself is never raced:
 * at the deadline its connection is cut (SmtpSession.abort) and the attempt
 * waits for the transaction to settle, so a 250 that did arrive is still seen
 * and recorded (docs/decisions/0008) and nothing after the cut can succeed.
 */
import { localReplies } from './local-replies.ts';

export class DeadlineError extends Error {
  override name = 'DeadlineError';
  readonly reply: string;
  constructor(step: string, ms: number) {
    super(`${step}: attempt deadline of ${Math.round(ms / 1000)} s reached`);
    this.reply = localReplies.attemptTimedOut(`${step} after ${Math.round(ms / 1000)} s`);
  }
}

export interface AttemptDeadline {
  /** Aborted when the attempt's time is up. */
  signal: AbortSignal;
  ms: number;
}

/** Run an attempt with a deadline that aborts `signal` after `ms`. */
export async function withinDeadline<T>(
  ms: number,
  run: (deadline: AttemptDeadline) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  try {
    return await run({ signal: controller.signal, ms });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The step's result, or DeadlineError if the deadline comes first; a result
 * that arrives after that is handed to `discard` (a late session is closed).
 */
export function beforeDeadline<T>(
  deadline: AttemptDeadline,
  step: string,
  work: Promise<T>,
  discard?: (late: T) => void,
): Promise<T> {
  if (deadline.signal.aborted) {
    void work.then(
      (v) => discard?.(v),
      () => {},
    );
    return Promise.reject(new DeadlineError(step, deadline.ms));
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const onAbort = () => {
      if (done) return;
      done = true;
      reject(new DeadlineError(step, deadline.ms));
    };
    deadline.signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        deadline.signal.removeEventListener('abort', onAbort);
        if (done) discard?.(v);
        else {
          done = true;
          resolve(v);
        }
      },
      (err) => {
        deadline.signal.removeEventListener('abort', onAbort);
        if (!done) {
          done = true;
          reject(err);
        }
      },
    );
  });
}
