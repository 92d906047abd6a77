/**
 * The test bed of an end-to-end test that runs Sluice as child processes: a
 * NATS server, an SMTP sink standing for example.net, a temp dir holding the
 * config, and the list of processes the test started. writeConfig() writes
 * the standard `sluice run` config (harness writeSluiceConfig) against this
 * bed on a fresh ingress port; stop() SIGKILLs whatever process is still
 * running, then stops the sink and NATS and removes the dir, so a failed test
 * leaves nothing behind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type DnsServer,
  freePort,
  type NatsTestServer,
  type SluiceConfigOptions,
  type SmtpSink,
  type SmtpSinkOptions,
  startDnsServer,
  startNats,
  startSmtpSink,
  writeSluiceConfig,
} from '@sluice/test-harness';
import type { SluiceProcess } from './helpers.ts';

export interface ProcessBed {
  nats: NatsTestServer;
  sink: SmtpSink;
  /** An empty DNS server on loopback: every name NXDOMAIN, so SPF/DMARC say none (a dead DNS would tempfail). */
  dns: DnsServer;
  dir: string;
  /** Processes the test started: stop() kills the ones still running. */
  procs: SluiceProcess[];
  /** Write dir/sluice.yaml for this bed's NATS and sink, the ingress on a free port. */
  writeConfig(
    opts?: Omit<SluiceConfigOptions, 'natsUrl' | 'sinkPort' | 'smtpPort'>,
  ): Promise<{ configFile: string; smtpPort: number }>;
  stop(): Promise<void>;
}

/** Start NATS and the sink (with `opts.sink`) and make a temp dir named after `name`. */
export async function startProcessBed(
  name: string,
  opts: { sink?: SmtpSinkOptions } = {},
): Promise<ProcessBed> {
  const dir = mkdtempSync(join(tmpdir(), `sluice-${name}-`));
  const procs: SluiceProcess[] = [];
  let nats: NatsTestServer | undefined;
  let sink: SmtpSink | undefined;
  let dns: DnsServer | undefined;
  const stop = async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await sink?.stop();
    await dns?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    nats = await startNats();
    sink = await startSmtpSink({ port: 0, ...opts.sink });
    dns = await startDnsServer([]);
  } catch (err) {
    await stop();
    throw err;
  }
  const bed = { nats, sink, dns };
  return {
    ...bed,
    dir,
    procs,
    async writeConfig(opts = {}) {
      const smtpPort = await freePort();
      const configFile = join(dir, 'sluice.yaml');
      writeSluiceConfig(configFile, {
        dnsServers: [bed.dns.address],
        ...opts,
        natsUrl: bed.nats.url,
        sinkPort: bed.sink.port,
        smtpPort,
      });
      return { configFile, smtpPort };
    },
    stop,
  };
}
