/**
 * The pure parts of the Sluice-beside-Postfix benchmark (bench/compare/), so
 * CI covers them without Postfix or the long run: the generated Postfix and
 * Sluice configurations describe the same forwarding MX, and a result renders
 * to the table, the target checks, the README section and the SVG chart.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '@sluice/config';
import { parse as parseYaml } from 'yaml';
import {
  forwards,
  mainCf,
  masterCf,
  opendkimConf,
  sourceRecipient,
  transportMap,
  virtualMap,
} from '../../bench/compare/postfix-config.ts';
import {
  type CompareResult,
  markdownTable,
  ratios,
  replaceReadmeTable,
  summarize,
  svgChart,
  targetChecks,
} from '../../bench/compare/report.ts';
import { sluiceCompareConfig } from '../../bench/compare/sluice-side.ts';

const opts = { dir: '/var/lib/sluice-bench/postfix-x', smtpPort: 2600, sinkPort: 2700, recipients: 5 };

function param(cf: string, name: string): string | undefined {
  return (
    new RegExp(`^${name} =(?: (.*))?$`, 'm').exec(cf)?.[1] ?? (cf.includes(`\n${name} =`) ? '' : undefined)
  );
}

describe('Postfix configuration', () => {
  it('is a forwarding MX for in.test only: no local delivery, static route to the sink', () => {
    const cf = mainCf(opts);
    assert.equal(param(cf, 'mydestination'), '');
    assert.equal(param(cf, 'virtual_alias_domains'), 'in.test');
    assert.equal(param(cf, 'virtual_alias_maps'), `texthash:${opts.dir}/virtual`);
    assert.equal(param(cf, 'transport_maps'), `texthash:${opts.dir}/transport`);
    assert.equal(param(cf, 'queue_directory'), `${opts.dir}/queue`);
    assert.equal(param(cf, 'inet_interfaces'), '127.0.0.1');
    assert.equal(param(cf, 'smtpd_relay_restrictions'), 'reject_unauth_destination');
    assert.equal(transportMap(2700), 'out.test smtp:[127.0.0.1]:2700\n');
    assert.equal(param(cf, 'smtpd_milters'), undefined);
    assert.equal(param(cf, 'sender_canonical_maps'), undefined);
  });

  it('maps the recipients smtp-source writes (user, 2user, ...) to user-N@out.test', () => {
    assert.equal(sourceRecipient(1), 'user@in.test');
    assert.equal(sourceRecipient(3), '3user@in.test');
    assert.equal(
      virtualMap(3),
      'user@in.test user-1@out.test\n2user@in.test user-2@out.test\n3user@in.test user-3@out.test\n',
    );
  });

  it('wires postsrsd through the canonical maps and OpenDKIM as a milter in the variants', () => {
    const cf = mainCf({ ...opts, srs: { forwardPort: 10001, reversePort: 10002 }, dkimMilterPort: 8891 });
    assert.equal(param(cf, 'sender_canonical_maps'), 'tcp:127.0.0.1:10001');
    assert.equal(param(cf, 'recipient_canonical_maps'), 'tcp:127.0.0.1:10002');
    assert.equal(param(cf, 'smtpd_milters'), 'inet:127.0.0.1:8891');
    assert.match(opendkimConf({ dir: opts.dir, port: 8891 }), /^Socket inet:8891@127\.0\.0\.1$/m);
  });

  it('runs smtpd on its own loopback port and no service chrooted', () => {
    const rows = masterCf(opts)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(/\s+/));
    assert.deepEqual(rows[0]!.slice(0, 2), ['127.0.0.1:2600', 'inet']);
    assert.equal(rows[0]!.at(-1), 'smtpd');
    for (const r of rows) assert.equal(r[4], 'n', `${r[0]} is chrooted`);
    for (const s of ['pickup', 'cleanup', 'qmgr', 'rewrite', 'smtp', 'bounce', 'defer', 'postlog']) {
      assert.ok(
        rows.some((r) => r[0] === s),
        `master.cf lacks ${s}`,
      );
    }
  });
});

describe('Sluice configuration', () => {
  it('is a valid config with the same forwards and the same static route', () => {
    const yaml = sluiceCompareConfig({
      smtpPort: 2601,
      sinkPort: 2700,
      natsPort: 14999,
      dataDir: '/var/lib/sluice-bench/sluice-x/nats',
      dnsServer: '127.0.0.1:5353',
      recipients: 5,
    });
    const config = parseConfig(parseYaml(yaml), 'test');
    assert.deepEqual(config.domains.primary, 'in.test');
    assert.deepEqual(
      Object.entries(config.routing.forwards),
      forwards(5).map(([from, to]) => [from, [to]]),
    );
    assert.deepEqual(config.transports['out.test'], { host: '127.0.0.1', port: 2700, lmtp: false });
    assert.deepEqual(config.nats.servers, []);
    assert.equal(config.nats.embedded.port, 14999);
  });
});

function run(recipients: number, messagesPerSecond: number, cpuSeconds: number, queueCpuSeconds?: number) {
  const messages = 1000;
  return {
    recipients,
    messages,
    acceptSeconds: messages / messagesPerSecond,
    deliverSeconds: messages / messagesPerSecond,
    messagesPerSecond,
    cpuSeconds,
    ...(queueCpuSeconds !== undefined ? { queueCpuSeconds } : {}),
  };
}

const result: CompareResult = {
  date: '2026-11-30T03:00:00.000Z',
  machine: { cpus: 2, model: 'test', node: 'v24', loadavgAtStart: [0, 0, 0] },
  versions: {},
  load: { sessions: 20, messageBytes: 5120, messages: 1000, rounds: 2, quick: false },
  notes: [],
  systems: [
    {
      system: 'postfix',
      runs: [run(1, 200, 4), run(5, 180, 5), run(1, 220, 4), run(5, 160, 5)],
      latencyMs: { p50: 2, p99: 20, samples: 400, offeredPerSecond: 20 },
      peakRssMB: 600,
      peakPssMB: 100,
      peakProcesses: 30,
    },
    {
      system: 'sluice',
      runs: [run(1, 100, 9, 2), run(5, 90, 11, 3), run(1, 110, 9, 2), run(5, 90, 11, 3)],
      latencyMs: { p50: 5, p99: 60, samples: 400, offeredPerSecond: 20 },
      peakRssMB: 320,
      peakPssMB: 250,
      peakProcesses: 2,
    },
  ],
};

describe('comparison report', () => {
  it('averages the rounds per recipient count and divides CPU by all messages', () => {
    const s = summarize(result.systems[1]!);
    assert.deepEqual(s.messagesPerSecond, { 1: 105, 5: 90 });
    assert.deepEqual(s.messagesPerSecondRange, { 1: [100, 110], 5: [90, 90] });
    assert.equal(s.cpuSecondsPer1000, 10);
    assert.equal(s.queueCpuSecondsPer1000, 2.5);
    const r = ratios(result)!;
    assert.equal(r.throughput[1], 105 / 210);
    assert.equal(r.throughput[5], 90 / 170);
    assert.equal(r.cpu, 10 / 4.5);
    assert.equal(r.pss, 2.5);
  });

  it('checks the targets against the measured figures', () => {
    const checks = targetChecks(result);
    assert.deepEqual(
      checks.map((c) => c.met),
      [false, false, false, false],
    );
    assert.match(checks[0]!.measured, /0\.50x \(1 rcpt\), 0\.53x \(5 rcpt\)/);
    assert.equal(checks[1]!.measured, '60 ms');
  });

  it('renders a table with a row per system, the ratios and the pending SRS/DKIM row', () => {
    const table = markdownTable(result);
    const rows = table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| -'));
    assert.equal(rows.length, 1 + 2 + 2); // header, 2 systems, pending row, ratio row
    // msg/s: the mean over the rounds, then the lowest and highest round (none when they are equal).
    assert.match(
      rows[1]!,
      /^\| Postfix +\| 210\.0 \(200-220\) +\| 170\.0 \(160-180\) +\| 2\.0 \/ 20\.0 +\| 4\.50 +\| 600 \(100\)/,
    );
    assert.match(
      rows[2]!,
      /^\| Sluice +\| 105\.0 \(100-110\) +\| 90\.0 +\| 5\.0 \/ 60\.0 +\| 10\.00 \(nats-server 2\.50\)/,
    );
    assert.match(rows[3]!, /pending/);
    assert.match(rows[4]!, /\*\*0\.50x\*\* +\| \*\*0\.53x\*\*/);
    assert.match(table, /- not met: all-in-one peak RSS < 300 MB: 320 MB/);
  });

  it('replaces only the README section between the markers, and refuses a README without them', () => {
    const readme = 'a\n<!-- bench:compare -->\nold\n<!-- /bench:compare -->\nb\n';
    assert.equal(
      replaceReadmeTable(readme, 'new'),
      'a\n<!-- bench:compare -->\nnew\n<!-- /bench:compare -->\nb\n',
    );
    assert.throws(() => replaceReadmeTable('no markers', 'x'), /bench:compare/);
  });

  it('draws one bar per system in each panel, the longest for the largest value', () => {
    const svg = svgChart(result);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal((svg.match(/<rect x=/g) ?? []).length, 2 * 4); // 2 systems x (2 throughput + CPU + p99)
    const widths = [...svg.matchAll(/<rect x="\d+" y="\d+" width="(\d+)"/g)].map((m) => Number(m[1]));
    assert.ok(widths[0]! > widths[1]!, 'Postfix has the longer msg/s bar'); // 210 vs 105
    assert.ok(widths[4]! < widths[5]!, 'Sluice has the longer CPU bar'); // 4.5 vs 10
  });
});
