/**
 * Real nats-server processes for tests: one JetStream node on a random port in
 * a temp dir, or a 3-node JetStream cluster (R3 streams) on loopback. Both use
 * the same spawner as `sluice run` (@sluice/bus spawnNatsServer). A node can be
 * restarted on the same port and store (a server restart, for reconnect
 * tests) or killed (a crash). stop() stops every node and removes the temp dirs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NatsServerHandle, spawnNatsServer, waitForJetStream } from '@sluice/bus';
import { freePort } from './ports.ts';

const NATS_BINARY = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';

export interface NatsNode {
  readonly name: string;
  readonly url: string;
  readonly clientPort: number;
  readonly storeDir: string;
  /** The running process (replaced by restart()). */
  readonly server: NatsServerHandle;
  /** Stop gracefully and start again on the same port with the same store. */
  restart(): Promise<void>;
  /** SIGKILL (a crash); restart() brings it back. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsTestServer {
  nodes: NatsNode[];
  /** Client URLs of all nodes. */
  urls: string[];
  /** The first node's URL. */
  url: string;
  /** Replica count to configure streams with (1, or the cluster size). */
  replicas: number;
  stop(): Promise<void>;
}

interface NodeSpec {
  name: string;
  clientPort: number;
  storeDir: string;
  cluster?: { name: string; port: number; routes: string[] };
  waitForJetStream: boolean;
}

async function startNode(spec: NodeSpec): Promise<NatsNode> {
  const launch = (port: number, wait: boolean) =>
    spawnNatsServer({
      binary: NATS_BINARY,
      host: '127.0.0.1',
      port,
      storeDir: spec.storeDir,
      serverName: spec.name,
      cluster: spec.cluster,
      waitForJetStream: wait,
      // Tests do not need fsync per write; it only slows them down where supported.
      syncAlways: false,
    });
  let server = await launch(spec.clientPort, spec.waitForJetStream);
  const clientPort = server.clientPort;
  const node: NatsNode = {
    name: spec.name,
    url: server.url,
    clientPort,
    storeDir: spec.storeDir,
    get server() {
      return server;
    },
    async restart() {
      await server.stop();
      // In a cluster the node answers JetStream once it rejoined the meta group.
      server = await launch(clientPort, true);
    },
    async kill() {
      await server.kill();
    },
    async stop() {
      await server.stop();
    },
  };
  return node;
}

/** One JetStream node, or a cluster when `replicas` > 1. */
export async function startNats(opts: { replicas?: number } = {}): Promise<NatsTestServer> {
  const replicas = opts.replicas ?? 1;
  if (replicas > 1) return startNatsCluster(replicas);
  const root = await mkdtemp(join(tmpdir(), 'sluice-nats-'));
  try {
    const node = await startNode({
      name: 'n1',
      clientPort: -1,
      storeDir: join(root, 'n1'),
      waitForJetStream: true,
    });
    return {
      nodes: [node],
      urls: [node.url],
      url: node.url,
      replicas: 1,
      async stop() {
        await node.stop();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

/** `size` JetStream nodes routed to each other on loopback; resolves when JetStream answers on all. */
export async function startNatsCluster(size = 3): Promise<NatsTestServer> {
  const root = await mkdtemp(join(tmpdir(), 'sluice-nats-cluster-'));
  const nodes: NatsNode[] = [];
  try {
    const clusterPorts: number[] = [];
    for (let i = 0; i < size; i++) clusterPorts.push(await freePort());
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`);
    for (let i = 0; i < size; i++) {
      nodes.push(
        await startNode({
          name: `n${i + 1}`,
          clientPort: -1,
          storeDir: join(root, `n${i + 1}`),
          cluster: { name: 'sluice-test', port: clusterPorts[i]!, routes: routes.filter((_, j) => j !== i) },
          // JetStream answers only once a meta leader is elected, i.e. after a quorum started.
          waitForJetStream: false,
        }),
      );
    }
    for (const n of nodes) await waitForJetStream(n.url, 30_000);
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const urls = nodes.map((n) => n.url);
  return {
    nodes,
    urls,
    url: urls[0]!,
    replicas: size,
    async stop() {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await rm(root, { recursive: true, force: true });
    },
  };
}
