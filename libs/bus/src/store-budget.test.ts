/**
 * The store budget against a real embedded-style nats-server: the automatic
 * budget follows the disk, the server is capped at the budget
 * (max_file_store), Sluice's objects fit inside it with the reserve left,
 * JetStream refuses a stream that would take more than is left (so work
 * streams can never eat the ledger's share), and the free-space guard reads
 * the store disk.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Bus } from './bus.ts';
import { defaultBusConfig } from './config.ts';
import { spawnNatsServer } from './nats-server.ts';
import { bytesUnder, embeddedStoreBudget, freeBytesOf } from './store-budget.ts';
import { recordingLog } from './test-fixtures.ts';

const BINARY = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';
const MiB = 1024 * 1024;

test('embeddedStoreBudget: the fraction of (free space + what the store holds)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-budget-'));
  try {
    await writeFile(join(dir, 'block.blk'), Buffer.alloc(64 * 1024));
    assert.equal(await bytesUnder(dir), 64 * 1024);
    const budget = await embeddedStoreBudget(dir, 0.5);
    const free = await freeBytesOf(dir);
    // Free space moves while other processes write: allow 1% of slack.
    assert.ok(Math.abs(budget - (free + 64 * 1024) * 0.5) < free * 0.01, `${budget} ~ half of ${free}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a server capped at the budget takes all of Sluice, keeps the reserve, and the guard reads its disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-budget-srv-'));
  const budget = 64 * MiB;
  const srv = await spawnNatsServer({ binary: BINARY, port: 0, storeDir: dir, maxFileStoreBytes: budget });
  try {
    assert.match(await readFile(srv.configFile, 'utf8'), new RegExp(`max_file_store: ${budget}`));
    const cfg = defaultBusConfig({
      servers: [srv.url],
      storeBudgetBytes: budget,
      storeDir: dir,
      storeMinFreeBytes: MiB,
    });
    const bus = await Bus.connect(cfg, recordingLog());
    try {
      const report = await bus.ensureTopology();
      assert.equal(report.limits.budgetBytes, budget);
      // The server refuses to reserve more than the budget holds (JetStream reserves
      // max_bytes against max_file_store).
      const jsm = await jetstreamManager(bus.nc);
      await assert.rejects(
        jsm.streams.add({ name: 'TOO_BIG', subjects: ['too.big'], max_bytes: budget + MiB }),
        /insufficient storage/i,
      );
      if (report.limits.bytesLimitSafe) {
        // Sluice's objects reserve 90% of it: the reserve is really left unreserved.
        await jsm.streams.add({ name: 'RESERVE_FITS', subjects: ['reserve.fits'], max_bytes: 5 * MiB });
        await assert.rejects(
          jsm.streams.add({ name: 'BEYOND_RESERVE', subjects: ['beyond'], max_bytes: 8 * MiB }),
          /insufficient storage/i,
        );
      }
      // The guard: with this threshold there is room; the disk is what it measures.
      const room = await bus.storeRoom();
      assert.equal(room.ok, true);
    } finally {
      await bus.close();
    }
    const tight = await Bus.connect(
      {
        ...defaultBusConfig({ servers: [srv.url], storeBudgetBytes: budget, storeDir: dir }),
        storeMinFreeBytes: 2 ** 52,
      },
      recordingLog(),
    );
    try {
      const room = await tight.storeRoom();
      assert.equal(room.ok, false);
      assert.equal(room.short, 'budget', 'the budget (64 MiB) is smaller than the disk');
    } finally {
      await tight.close();
    }
  } finally {
    await srv.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
