/**
 * Connect a `sluice` command to the NATS the running Sluice uses (the
 * configured servers, or the embedded server with the credentials in its
 * data dir), turning "cannot connect" into one clear line instead of a
 * stack trace. Used by the commands that talk to a running Sluice
 * (resolver-rpc.ts) or to its buckets (`sluice auth`).
 */
import { Bus, busConfigFrom } from '@sluice/bus';
import { createLogger } from '@sluice/log';
import { natsAccessOf, type ProcessConfig, redactUrl } from '@sluice/runtime';

export class NatsUnreachableError extends Error {}

export async function connectCliBus(pc: ProcessConfig): Promise<{ bus: Bus; where: string }> {
  const { config } = pc;
  const log = createLogger({ level: 'warn', instance: 'sluice-cli', destination: process.stderr as never });
  const access = await natsAccessOf(config, pc.baseDir);
  const where = access.servers.map(redactUrl).join(', ');
  const bus = await Bus.connect(
    busConfigFrom({ ...config, nats: { ...config.nats, ...access } }, 'sluice-cli'),
    log,
  ).catch((err: Error) => {
    const why = ((err.cause as Error | undefined) ?? err).message;
    throw new NatsUnreachableError(`cannot reach NATS at ${where}: ${why}`);
  });
  return { bus, where };
}
