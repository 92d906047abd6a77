/**
 * The TLS client certificate a configured next hop asks for
 * (transports.<key>.clientCert / clientKey, relay.clientCert / clientKey).
 * The route in the envelope names the transport (the resolver's route.name:
 * the address or domain key, or "relay"); the certificate and key stay in
 * this process' config and files and never travel in an envelope. The files
 * are read at each session, so a renewed certificate is used without a restart.
 */
import { readFileSync } from 'node:fs';
import type { SluiceConfig } from '@sluice/config';
import type { Route } from '@sluice/proto';

export interface ClientCert {
  cert: Buffer;
  key: Buffer;
}

/** The client certificate for a route; undefined when its next hop has none. Throws when a file cannot be read. */
export function clientCertFor(
  config: Pick<SluiceConfig, 'transports' | 'relay'>,
  route: Route,
): ClientCert | undefined {
  if (route.kind !== 'smtp') return undefined;
  const hop = config.transports[route.name] ?? (route.name === 'relay' ? config.relay : undefined);
  if (!hop?.clientCert || !hop.clientKey) return undefined;
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`TLS client ${what} ${path} unreadable: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  return { cert: read('certificate', hop.clientCert), key: read('key', hop.clientKey) };
}
