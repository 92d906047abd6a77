/**
 * What `sluice check-config` prints about a valid configuration: a few lines
 * an operator can eyeball. Never a secret: NATS URLs lose any user:password
 * they carry, and tokens and passwords are not shown at all.
 */
import type { SluiceConfig } from '@sluice/config';
import { redactUrl } from '@sluice/runtime/nats-access';

export function describeConfig(file: string, c: SluiceConfig): string[] {
  const auth = c.nats.token ? ' (token auth)' : c.nats.user ? ` (user ${c.nats.user})` : '';
  return [
    `${file}: OK`,
    `  hostname ${c.hostname}; domains ${[c.domains.primary, ...c.domains.aliases].join(', ')}`,
    `  ${Object.keys(c.routing.aliases).length} aliases, ${Object.keys(c.routing.forwards).length} forwards, ${Object.keys(c.transports).length} transports${c.relay ? `, relay ${c.relay.host}` : ''}`,
    `  ingress ${c.ingress.listen.map((l) => `${l.host}:${l.port}`).join(', ')}; max message ${c.ingress.maxMessageBytes} bytes`,
    ...submissionLine(c),
    `  nats ${
      c.nats.servers.length
        ? c.nats.servers.map(redactUrl).join(', ') + auth
        : `embedded on ${c.nats.embedded.host}:${c.nats.embedded.port} (data ${c.nats.embedded.dataDir}, generated credentials)`
    }, replicas ${c.nats.replicas}`,
  ];
}

/** The submission service's doors, when it is configured. */
function submissionLine(c: SluiceConfig): string[] {
  const sub = c.submission;
  if (!sub) return [];
  const at = (ls: Array<{ host: string; port: number }>) =>
    ls.map((l) => `${l.host}:${l.port}`).join(', ') || 'off';
  const relay = sub.relay ? `; relay ${at(sub.relay.listen)} (${sub.relay.clients.length} clients)` : '';
  return [`  submission 587 ${at(sub.listen.starttls)}; 465 ${at(sub.listen.implicitTls)}${relay}`];
}
