/**
 * `sluice trace QUEUE-ID`: read a message's timeline from the bus and render
 * it. Connects the way the running Sluice does (the configured NATS, or the
 * embedded server with the credentials in its data dir).
 */
import { Bus, busConfigFrom } from '@sluice/bus';
import { createLogger } from '@sluice/log';
import { natsAccessOf, type ProcessConfig, redactUrl } from '@sluice/runtime';
import { renderTimeline } from './timeline.ts';

export async function traceMessage(
  pc: ProcessConfig,
  queueId: string,
  json: boolean,
): Promise<{ text: string; found: boolean }> {
  const { config } = pc;
  const log = createLogger({ level: 'warn', instance: 'sluice-cli', destination: process.stderr as never });
  const access = await natsAccessOf(config, pc.baseDir);
  const bus = await Bus.connect(
    busConfigFrom({ ...config, nats: { ...config.nats, ...access } }, 'sluice-cli'),
    log,
  ).catch((err: Error) => {
    // The bus' message repeats the URLs; name them once, without credentials.
    const why = ((err.cause as Error | undefined) ?? err).message;
    throw new Error(`cannot reach NATS at ${access.servers.map(redactUrl).join(', ')}: ${why}`);
  });
  try {
    const events = await bus.readTimeline(queueId.toUpperCase());
    return {
      text: json ? JSON.stringify(events, null, 2) : renderTimeline(events),
      found: events.length > 0,
    };
  } finally {
    await bus.close();
  }
}
