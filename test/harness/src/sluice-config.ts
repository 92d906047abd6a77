/**
 * The config file of a `sluice run` child in end-to-end tests and the bench:
 * mx.example.org serving example.org, alice@example.org forwarded to
 * alice@example.net, example.net delivered to the test's SMTP sink, the
 * ingress on `smtpPort`, the test's NATS, and DNS servers that answer
 * nothing unless the caller brings its own. Written as YAML, the format an
 * operator writes. Callers add sections through `extraYaml`; a top-level key
 * this module already writes is refused there, since YAML forbids it twice.
 */
import { writeFileSync } from 'node:fs';

export interface SluiceConfigOptions {
  natsUrl: string;
  /** Where the ingress listens (127.0.0.1). */
  smtpPort: number;
  /** The SMTP sink that receives example.net's mail. */
  sinkPort: number;
  /** DNS servers (default 127.0.0.1:9: nothing listens, lookups fail at once, so the filter answers MX mail 451 — give a loopback DNS server for mail to go through). */
  dnsServers?: string[];
  /** DNS timeout in seconds (default 1). */
  dnsTimeout?: number;
  /** Aliases besides the forward, e.g. { 'team@example.org': ['alice@example.org'] }. */
  aliases?: Record<string, string[]>;
  /** Further top-level sections (egress, bus, log, ...), as YAML text. */
  extraYaml?: string;
}

const WRITTEN_KEYS = ['hostname', 'domains', 'routing', 'transports', 'nats', 'ingress', 'dns'];

export function sluiceConfigYaml(opts: SluiceConfigOptions): string {
  const extra = opts.extraYaml ?? '';
  for (const [, key] of extra.matchAll(/^([\w-]+):/gm)) {
    if (WRITTEN_KEYS.includes(key!))
      throw new Error(`extraYaml repeats the top-level key ${key}: use the option`);
  }
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const aliases = Object.entries(opts.aliases ?? {})
    .map(([from, to]) => `${JSON.stringify(from)}: ${list(to)}`)
    .join(', ');
  return `hostname: mx.example.org
domains: { primary: example.org }
routing:
${aliases ? `  aliases: { ${aliases} }\n` : ''}  forwards: { alice@example.org: [alice@example.net] }
transports:
  example.net: { host: 127.0.0.1, port: ${opts.sinkPort} }
nats: { servers: ["${opts.natsUrl}"] }
ingress: { listen: [{ host: 127.0.0.1, port: ${opts.smtpPort} }] }
dns: { servers: ${list(opts.dnsServers ?? ['127.0.0.1:9'])}, timeout: ${opts.dnsTimeout ?? 1} }
${extra}${extra && !extra.endsWith('\n') ? '\n' : ''}`;
}

/** Write the config to `file` (see sluiceConfigYaml). */
export function writeSluiceConfig(file: string, opts: SluiceConfigOptions): void {
  writeFileSync(file, sluiceConfigYaml(opts));
}
