/**
 * The pure parts of the Sluice-beside-Postfix benchmark (bench/compare/), so
 * CI covers them without Postfix or the long run: the generated Postfix and
 * Sluice configurations describe the same forwarding MX, and a result renders
 * to the table, the target checks, the README section and the SVG chart.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
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
  signingRatios,
  summarize,
  svgChart,
  targetChecks,
} from '../../bench/compare/report.ts';
import {
  SIGNED_FROM,
  SIGNED_SENDER,
  signedDumpProblems,
  signedMailRecords,
  signedMessage,
} from '../../bench/compare/signed-mail.ts';
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
  const configArgs = {
    smtpPort: 2601,
    sinkPort: 2700,
    natsPort: 14999,
    dataDir: '/var/lib/sluice-bench/sluice-x/nats',
    dnsServer: '127.0.0.1:5353',
  };
  it('is a valid config with the same forwards and the same static route', () => {
    const yaml = sluiceCompareConfig({
      ...configArgs,
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
    assert.deepEqual(config.srs.secrets, []);
    assert.deepEqual(config.dkim.keys, []);
  });

  it('points every service at a nats-server started apart, for the process-per-service variant', () => {
    const yaml = sluiceCompareConfig({
      ...configArgs,
      recipients: 1,
      remoteNats: { url: 'nats://127.0.0.1:14999', token: 'abc123' },
    });
    const config = parseConfig(parseYaml(yaml), 'test');
    assert.deepEqual(config.nats.servers, ['nats://127.0.0.1:14999']);
    assert.equal(config.nats.token, 'abc123');
    assert.deepEqual(Object.keys(config.routing.forwards), ['user@in.test']);
    assert.deepEqual(config.transports['out.test'], { host: '127.0.0.1', port: 2700, lmtp: false });
  });

  it('adds SRS and the DKIM keys of in.test, without ARC, in the signing variants', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const yaml = sluiceCompareConfig({
      ...configArgs,
      recipients: 1,
      signing: {
        srsSecret: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=',
        keys: [
          { selector: 'rsa1', privateKey: rsa },
          { selector: 'ed1', privateKey: ed },
        ],
      },
    });
    const config = parseConfig(parseYaml(yaml), 'test');
    assert.deepEqual(config.srs.secrets, ['c2VjcmV0LXNlY3JldC1zZWNyZXQ=']);
    assert.deepEqual(
      config.dkim.keys.map((k) => [k.domain, k.selector, k.privateKey, k.active]),
      [
        ['in.test', 'rsa1', rsa, true],
        ['in.test', 'ed1', ed, true],
      ],
    );
    assert.equal(config.arc.enabled, false);
  });
});

describe('signing variants: the mail', () => {
  it('has our From, a foreign envelope sender, its own Message-ID, and about the size asked', () => {
    const a = signedMessage(5120, 1);
    const b = signedMessage(5120, 2);
    assert.notEqual(a, b);
    assert.match(a, new RegExp(`^From: <${SIGNED_FROM}>\\r\\n`));
    assert.match(a, /^Message-ID: <1\.bench@mail\.in\.test>\r$/m);
    assert.equal(SIGNED_FROM.split('@')[1], 'in.test');
    assert.equal(SIGNED_SENDER.split('@')[1], 'mail.in.test');
    assert.ok(Math.abs(a.length - 5120) < 80, `${a.length} bytes`);
    assert.ok(a.split('\r\n').every((l) => !l.startsWith('.') && l.length <= 998));
    assert.ok(a.endsWith('\r\n'));
    // SPF of the envelope sender's domain and a DMARC record of the From domain (relaxed alignment).
    assert.deepEqual(
      signedMailRecords().map((r) => r.name),
      ['mail.in.test', '_dmarc.in.test'],
    );
  });

  const dump = (mailArgs: string, headers: string) =>
    `X-Client-Addr: 127.0.0.1\nX-Mail-Args: ${mailArgs}\nX-Rcpt-Args: <user-1@out.test>\n${headers}From: <sender@in.test>\n\nxx\nDKIM-Signature: d=in.test; in the body\n`;
  const rsaSig =
    'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=in.test; s=rsa1;\n t=1; bh=x; b=y\n';
  const edSig = 'DKIM-Signature: v=1; a=ed25519-sha256; d=in.test;\n s=ed1; bh=x; b=y\n';
  const foreignSig = 'DKIM-Signature: v=1; a=rsa-sha256; d=other.test; s=s1; bh=x; b=y\n';

  it('accepts a delivered message only if SRS-rewritten and signed as often as asked', () => {
    const srs = '<SRS0=RMft=JT=mail.in.test=sender@srs.in.test>';
    assert.deepEqual(signedDumpProblems(dump(srs, rsaSig), { signatures: 1 }), []);
    assert.deepEqual(signedDumpProblems(dump(srs, rsaSig + edSig + foreignSig), { signatures: 2 }), []);
    assert.deepEqual(signedDumpProblems(dump(srs, rsaSig), { signatures: 2 }), [
      '1 DKIM signatures of in.test, expected 2',
    ]);
    assert.deepEqual(signedDumpProblems(dump(srs, foreignSig), { signatures: 1 }), [
      '0 DKIM signatures of in.test, expected 1',
    ]);
    assert.deepEqual(signedDumpProblems(dump('<sender@mail.in.test>', rsaSig), { signatures: 1 }), [
      'envelope sender not SRS-rewritten: <sender@mail.in.test>',
    ]);
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

  it('renders a table with a row per system and the ratios', () => {
    const table = markdownTable(result);
    const rows = table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| -'));
    assert.equal(rows.length, 1 + 2 + 1); // header, 2 systems, ratio row
    // msg/s: the mean over the rounds, then the lowest and highest round (none when they are equal).
    assert.match(
      rows[1]!,
      /^\| Postfix +\| 210\.0 \(200-220\) +\| 170\.0 \(160-180\) +\| 2\.0 \/ 20\.0 +\| 4\.50 +\| 600 \(100\)/,
    );
    assert.match(
      rows[2]!,
      /^\| Sluice +\| 105\.0 \(100-110\) +\| 90\.0 +\| 5\.0 \/ 60\.0 +\| 10\.00 \(nats-server 2\.50\)/,
    );
    assert.match(rows[3]!, /\*\*0\.50x\*\* +\| \*\*0\.53x\*\*/);
    assert.match(table, /- not met: all-in-one peak RSS < 300 MB: 320 MB/);
    assert.doesNotMatch(table, /pending|SRS \+ DKIM/);
    assert.equal(signingRatios(result), undefined);
  });

  it('reads the process-per-service variant against Postfix too, in its own ratio row and target', () => {
    const withServices: CompareResult = {
      ...result,
      systems: [
        ...result.systems,
        {
          system: 'sluice-services',
          runs: [run(1, 252, 12, 2), run(5, 180, 14, 3)],
          latencyMs: { p50: 5, p99: 30, samples: 200, offeredPerSecond: 20 },
          peakRssMB: 800,
          peakPssMB: 600,
          peakProcesses: 6,
        },
      ],
    };
    const r = ratios(withServices, 'sluice-services')!;
    assert.deepEqual(r.throughput, { 1: 252 / 210, 5: 180 / 170 });
    assert.equal(r.cpu, 13 / 4.5);
    const table = markdownTable(withServices);
    const rows = table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| -'));
    assert.equal(rows.length, 1 + 3 + 2); // header, 3 systems, 2 ratio rows
    assert.match(rows[3]!, /^\| Sluice, a process per service +\| 252\.0 +\| 180\.0 /);
    assert.match(
      rows[5]!,
      /^\| \*\*Sluice, a process per service \/ Postfix\*\* +\| \*\*1\.20x\*\* +\| \*\*1\.06x\*\*/,
    );
    assert.match(
      table,
      /- met: forwarding >= 1\.0x bare Postfix, a process per service \(same run\): 1\.20x/,
    );
    // The all-in-one targets are still read on `sluice run`.
    assert.match(table, /- not met: forwarding >= 1\.0x bare Postfix \(same run\): 0\.50x/);
  });

  const withSigning: CompareResult = {
    ...result,
    systems: [
      ...result.systems,
      {
        system: 'postfix+srs+dkim',
        runs: [run(1, 50, 20), run(5, 40, 24)],
        latencyMs: { p50: 4, p99: 30, samples: 200, offeredPerSecond: 20 },
        peakRssMB: 700,
        peakPssMB: 140,
        peakProcesses: 34,
      },
      {
        system: 'sluice+srs+dkim',
        runs: [run(1, 120, 13, 2), run(5, 80, 15, 3)],
        latencyMs: { p50: 6, p99: 40, samples: 200, offeredPerSecond: 20 },
        peakRssMB: 330,
        peakPssMB: 260,
        peakProcesses: 2,
      },
      {
        system: 'sluice+srs+dkim2',
        runs: [run(1, 110, 14, 2), run(5, 70, 16, 3)],
        latencyMs: { p50: 6, p99: 45, samples: 200, offeredPerSecond: 20 },
        peakRssMB: 330,
        peakPssMB: 260,
        peakProcesses: 2,
      },
    ],
  };

  it('compares Sluice + SRS + DKIM with Postfix + postsrsd + OpenDKIM and prices the rewriter', () => {
    const sr = signingRatios(withSigning)!;
    assert.deepEqual(sr.throughput, { 1: 120 / 50, 5: 80 / 40 });
    assert.equal(sr.cpu, 14 / 22);
    // CPU per message over bare Sluice's (10 s / 1,000): ms per message.
    assert.deepEqual(sr.rewriterCpuMs, { 'sluice+srs+dkim': 4, 'sluice+srs+dkim2': 5 });
    const check = targetChecks(withSigning).at(-1)!;
    assert.match(check.target, /SRS \+ DKIM >= 2\.0x Postfix \+ postsrsd \+ OpenDKIM/);
    assert.equal(check.measured, '2.40x (1 rcpt), 2.00x (5 rcpt)');
    assert.equal(check.met, true);
    const table = markdownTable(withSigning);
    const rows = table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| -'));
    assert.equal(rows.length, 1 + 5 + 2); // header, 5 systems, 2 ratio rows
    assert.match(rows[4]!, /^\| Sluice \+ SRS \+ DKIM \(RSA-2048\) +\| 120\.0 +\| 80\.0 /);
    assert.match(
      rows[7]!,
      /^\| \*\*Sluice \+ SRS \+ DKIM \/ Postfix \+ postsrsd \+ OpenDKIM\*\* +\| \*\*2\.40x\*\* +\| \*\*2\.00x\*\*/,
    );
    assert.match(table, /- met: forwarding with SRS \+ DKIM >= 2\.0x/);
    assert.match(
      table,
      /the rewriter's cost per message \(SRS \+ DKIM signing, RSA-2048\): 4\.00 ms CPU over bare Sluice/,
    );
    assert.match(table, /\(SRS \+ DKIM signing, RSA-2048 \+ Ed25519\): 5\.00 ms/);
    // Sluice's variants are the blue bars: 3 of 5 per panel, 4 panels.
    assert.equal((svgChart(withSigning).match(/fill="#2a7ab0"/g) ?? []).length, 3 * 4);
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
