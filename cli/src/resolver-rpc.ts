/**
 * Ask a running service over NATS (the resolver for `sluice lookup` and
 * `sluice ldap refresh`, the egress for `sluice queue`):
 * connect the way the running Sluice does (the configured NATS, or the
 * embedded server with the credentials in its data dir), send one request to
 * the resolver's queue group, and turn "nobody answered" into a clear
 * message instead of a stack trace.
 */
import { RpcError } from '@sluice/bus';
import type { ProcessConfig } from '@sluice/runtime';
import { connectCliBus, NatsUnreachableError } from './nats-connect.ts';

export class NoResolverError extends Error {}

export async function askResolver(
  pc: ProcessConfig,
  subject: string,
  body: unknown,
  timeoutMs: number,
  service: 'resolver' | 'egress' = 'resolver',
): Promise<unknown> {
  const { bus, where } = await connectCliBus(pc).catch((err: Error) => {
    throw err instanceof NatsUnreachableError ? new NoResolverError(err.message) : err;
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
