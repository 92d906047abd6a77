/**
 * Ask a running service over NATS (the resolver for `sluice lookup` and
 * `sluice ldap refresh`, the egress for `sluice queue`):
 * connect the way the running Sluice does (the configured NATS, or the
 * embedded server with the credentials in its data dir), send one request to
 * the resolver's queue group, and turn "nobody answered" into a clear
 * message instead of a stack trace.
 */
import { Bus, busConfigFrom, RpcError } from '@sluice/bus';
import { createLogger } from '@sluice/log';
import { natsAccessOf, type ProcessConfig, redactUrl } from '@sluice/runtime';

export class NoResolverError extends Error {}

export async function askResolver(
  pc: ProcessConfig,
  subject: string,
  body: unknown,
  timeoutMs: number,
  service: 'resolver' | 'egress' = 'resolver',
): Promise<unknown> {
  const { config } = pc;
  const log = createLogger({ level: 'warn', instance: 'sluice-cli', destination: process.stderr as never });
  const access = await natsAccessOf(config, pc.baseDir);
  const where = access.servers.map(redactUrl).join(', ');
  const bus = await Bus.connect(
    busConfigFrom({ ...config, nats: { ...config.nats, ...access } }, 'sluice-cli'),
    log,
  ).catch((err: Error) => {
    const why = ((err.cause as Error | undefined) ?? err).message;
    throw new NoResolverError(`cannot reach NATS at ${where}: ${why}`);
  });
  try {
    const data = await bus.request(subject, new TextEncoder().encode(JSON.stringify(body)), timeoutMs);
    return JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    if (err instanceof RpcError && (err.code === 'no_responders' || err.code === 'timeout')) {
      throw new NoResolverError(
        `no ${service} answered on NATS at ${where} (${err.code}): is 'sluice run' (or 'sluice run ${service}') running with this config?`,
      );
    }
    throw err;
  } finally {
    await bus.close();
  }
}
