/**
 * Sluice as it is deployed (deploy/k8s: one service per pod), on this one
 * machine: one nats-server started apart (JetStream file store on the same
 * disk, sync_interval always where the server has it, a client token: the
 * settings `sluice run` gives its embedded server) and one `sluice run
 * SERVICE` process per service of the forwarding path (filter, resolver,
 * rewriter, egress, then ingress, so that the MX answers only once the
 * stages behind it run), each started as a pod starts it (deploy/k8s:
 * `node NODE-OPTIONS services/SERVICE/src/main.ts --config FILE`, loading
 * only its own service; Node's compile cache on, as `sluice` has it), all
 * with the same config as the single-process side (sluice-side.ts) except
 * `nats.servers` pointing at that server.
 *
 * Why: `sluice run` puts every service on one Node event loop, i.e. one
 * core; Postfix spreads its processes over all of them. This variant shows
 * what the same code does when the kernel may schedule the stages apart
 * (docs/decisions/0038).
 *
 * `pids()` are the service processes and the nats-server (each a root of
 * the CPU and memory sums); `natsPid()` the server, for its share.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type NatsServerHandle, spawnNatsServer } from '@sluice/bus';
import { freePort, type SluiceProcess, startNodeProcess } from '@sluice/test-harness';
import { benchDataRoot } from './postfix-side.ts';
import { type SluiceSide, type SluiceSigning, sluiceCompareConfig } from './sluice-side.ts';

/** The services of a forward, in start order: the MX last. */
export const FORWARDING_SERVICES = ['filter', 'resolver', 'rewriter', 'egress', 'ingress'] as const;

const root = resolve(import.meta.dirname, '../..');
/** The V8 options `sluice` runs with (decision 0036), one per word. */
const nodeOptions = readFileSync(join(root, 'cli/bin/node-options'), 'utf8').split(/\s+/).filter(Boolean);

export async function startSluiceServices(opts: {
  sinkPort: number;
  dnsServer: string;
  recipients: number;
  signing?: SluiceSigning;
}): Promise<SluiceSide> {
  const dir = mkdtempSync(join(benchDataRoot(), 'sluice-services-'));
  const token = randomBytes(24).toString('hex');
  const procs: SluiceProcess[] = [];
  let nats: NatsServerHandle | undefined;
  const stopAll = async () => {
    // The MX first (no new mail), then the stages, then the server their acks go to.
    for (const proc of [...procs].reverse()) {
      proc.child.kill('SIGTERM');
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 20_000);
      await proc.exited;
      clearTimeout(timer);
    }
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    nats = await spawnNatsServer({
      binary: '/usr/sbin/nats-server',
      port: await freePort(),
      storeDir: join(dir, 'nats'),
      syncAlways: true,
      auth: { token },
    });
    const smtpPort = await freePort();
    const configFile = join(dir, 'sluice.yaml');
    writeFileSync(
      configFile,
      sluiceCompareConfig({
        ...opts,
        smtpPort,
        natsPort: nats.clientPort,
        dataDir: join(dir, 'nats'),
        remoteNats: { url: nats.url, token },
      }),
    );
    const logDir = process.env['BENCH_SLUICE_LOG'];
    // Children inherit it: the sources are stripped once, as under cli/bin/sluice.
    process.env['NODE_COMPILE_CACHE'] ??= join(tmpdir(), 'node-compile-cache');
    for (const service of FORWARDING_SERVICES) {
      const main = join(root, 'services', service, 'src/main.ts');
      const proc = await startNodeProcess([main, '--config', configFile], {
        timeoutMs: 60_000,
        nodeArgs: nodeOptions,
      });
      procs.push(proc);
      proc.child.stdout!.removeAllListeners('data');
      if (logDir)
        proc.child.stdout!.pipe(createWriteStream(join(logDir, `sluice-${smtpPort}-${service}.log`)));
      else proc.child.stdout!.resume();
    }
    const server = nats;
    return {
      smtpPort,
      pids: () => [...procs.map((p) => p.child.pid!), server.pid],
      natsPid: () => server.pid,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
