/**
 * Backpressure downstream of the 250: a stage whose next stream is full
 * (discard new: the stream refuses, it never drops accepted mail) keeps its
 * input and tries the publish again, with a growing pause, until the stream
 * has room. The input's ack deadline is extended at every pause (working),
 * so JetStream neither redelivers it nor counts another delivery, and the
 * message never reaches maxDeliver and the dead-letter stream for a full
 * disk. The stage's concurrency slots fill up with held messages, so it
 * stops pulling: the backlog stays in its own stream, where it is counted.
 * Only stop() ends a hold early (the error is thrown; the consumer naks
 * the input without spending a delivery).
 */
import type { BusLog } from './bus-log.ts';
import { BusPublishError, type PublishHold } from './types.ts';

/** First pause after a "full" answer; doubles up to maxPauseMs. */
export const BACKPRESSURE_FIRST_PAUSE_MS = 100;

export function isFullError(err: unknown): err is BusPublishError {
  return err instanceof BusPublishError && err.full;
}

export async function holdWhileFull<T>(
  publish: () => Promise<T>,
  hold: PublishHold,
  o: { log: BusLog; subject: string; queueId: string; maxPauseMs: number },
): Promise<T> {
  let pause = BACKPRESSURE_FIRST_PAUSE_MS;
  let waits = 0;
  for (;;) {
    try {
      const r = await publish();
      if (waits > 0) o.log.info({ subject: o.subject, queueId: o.queueId, waits }, 'stream has room again');
      return r;
    } catch (err) {
      if (!isFullError(err) || hold.signal.aborted) throw err;
      if (waits === 0) {
        o.log.warn(
          { subject: o.subject, queueId: o.queueId, err },
          'next stream full: holding the message until it has room (backpressure)',
        );
      }
      waits++;
      hold.onFull?.();
      hold.working();
      await pauseUnlessAborted(pause, hold.signal);
      pause = Math.min(pause * 2, o.maxPauseMs);
    }
  }
}

function pauseUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
