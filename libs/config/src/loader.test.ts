import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from './config-error.ts';
import { loadConfig, parseConfig } from './loader.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Load YAML text with no environment, returning the ConfigError's problem lines. */
function problemsOf(text: string, env: NodeJS.ProcessEnv = {}, file?: string): string[] {
  try {
    loadConfig({ text, env, file });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    const [header, ...lines] = err.message.split('\n');
    assert.match(header!, new RegExp(`\\(${lines.length} problems?\\):$`));
    assert.equal(err.problems.length, lines.length);
    return lines;
  }
  assert.fail('the configuration was accepted');
}

describe('loadConfig', () => {
  test('applies the defaults to a minimal configuration', () => {
    const c = loadConfig({ text: 'domains:\n  primary: Example.ORG\n', env: {} });
    assert.equal(c.domains.primary, 'example.org');
    assert.deepEqual(c.domains.aliases, []);
    assert.equal(c.hostname, 'localhost');
    assert.deepEqual(c.ingress.listen, [{ host: '0.0.0.0', port: 25 }]);
    assert.equal(c.ingress.maxMessageBytes, 50 * 1024 * 1024);
    assert.deepEqual(c.nats.servers, []);
    assert.equal(c.nats.embedded.port, 4222);
    assert.equal(c.bus.maxDeliver, 50);
    assert.deepEqual(c.egress.retrySchedule, [60, 300, 900, 1800, 3600, 7200, 14400]);
    assert.equal(c.log.addresses, 'clear');
    assert.equal(c.telemetry.serviceName, 'sluice');
    assert.equal(c.http.listen, undefined);
  });

  test('an empty section means its defaults', () => {
    const c = loadConfig({ text: 'domains: { primary: example.org }\nnats:\ningress:\n', env: {} });
    assert.equal(c.nats.replicas, 1);
    assert.equal(c.ingress.maxClients, 1000);
  });

  test('YAML anchors and merge keys work', () => {
    const c = loadConfig({
      text: [
        'domains: { primary: example.org }',
        'transports:',
        '  a.example: &internal { host: 10.0.0.5, port: 24, lmtp: true }',
        '  b.example: { <<: *internal, port: 2424 }',
        '',
      ].join('\n'),
      env: {},
    });
    assert.deepEqual(c.transports['b.example'], { host: '10.0.0.5', port: 2424, lmtp: true });
  });

  test('names an unknown key with the nearest known one and its line', () => {
    const lines = problemsOf(
      'domains:\n  primary: example.org\ningress:\n  maxMesageBytes: 5\n',
      {},
      'sluice.yaml',
    );
    assert.deepEqual(lines, [
      'ingress.maxMesageBytes: unknown key — did you mean `maxMessageBytes`? (sluice.yaml:4:3)',
    ]);
  });

  test('suggests the camelCase key for a snake_case one', () => {
    const lines = problemsOf('domains: { primary: example.org }\negress: { require_tls: true }\n');
    assert.match(lines[0]!, /^egress\.require_tls: unknown key — did you mean `requireTls`\?/);
  });

  test('a wrong type names the key path, what is expected, what was given and where', () => {
    const lines = problemsOf(
      ['domains:', '  primary: example.org', 'ingress:', '  listen:', '    - port: abc', ''].join('\n'),
      {},
      'sluice.yaml',
    );
    assert.deepEqual(lines, [
      'ingress.listen[0].port: expected an integer 0-65535, got "abc" (sluice.yaml:5:13)',
    ]);
  });

  test('a wrong enum value gets a suggestion', () => {
    const lines = problemsOf('domains: { primary: example.org }\nlog: { level: info, addresses: hsah }\n');
    assert.match(
      lines[0]!,
      /^log\.addresses: expected one of clear, hash, drop, got "hsah" — did you mean `hash`\?/,
    );
  });

  test('reports every problem at once', () => {
    const text = [
      'domains:',
      '  primary: example.org',
      '  aliases: [example.org, "not a domain!"]',
      'routing:',
      '  aliases:',
      '    info@exmaple.org: [alice@example.org]',
      'ingress:',
      '  maxClients: 0',
      'ingres: {}',
      'log:',
      '  addresses: hash',
      'bus:',
      '  ackWait: 0',
      '',
    ].join('\n');
    const lines = problemsOf(text, {}, 'x.yaml');
    const expected = [
      /^domains\.aliases\[1\]: expected a DNS hostname, got "not a domain!" \(x\.yaml:3:26\)$/,
      /^ingress\.maxClients: expected an integer >= 1, got 0 \(x\.yaml:8:15\)$/,
      /^bus\.ackWait: expected a number > 0, got 0 \(x\.yaml:13:12\)$/,
      /^ingres: unknown key — did you mean `ingress`\? \(x\.yaml:9:1\)$/,
      /^log\.hashKey: missing while log\.addresses is "hash" — set a key/,
      /^domains: domain example\.org is listed twice — list each domain once/,
      /^routing\.aliases\["info@exmaple\.org"\]: exmaple\.org is not one of our domains — use example\.org/,
    ];
    assert.equal(lines.length, expected.length, lines.join('\n'));
    for (const re of expected)
      assert.ok(
        lines.some((l) => re.test(l)),
        `${re} in:\n${lines.join('\n')}`,
      );
  });

  test('a retry schedule that outlasts bus.maxDeliver is refused with the fix', () => {
    // Defaults: about 37 attempts over 5 days, below maxDeliver 50.
    loadConfig({ text: 'domains:\n  primary: example.org\n', env: {} });
    const problems = problemsOf('domains:\n  primary: example.org\negress:\n  retrySchedule: [600]\n');
    assert.equal(problems.length, 1);
    assert.match(
      problems[0]!,
      /^bus\.maxDeliver: 50 deliveries end before egress\.retrySchedule reaches bus\.queueLifetime \(721 attempts needed\) — raise bus\.maxDeliver above 721/,
    );
    loadConfig({
      text: 'domains:\n  primary: example.org\negress:\n  retrySchedule: [600]\nbus:\n  maxDeliver: 800\n',
      env: {},
    });
  });

  test('a duplicate window not longer than ackWait is refused with the fix', () => {
    const problems = problemsOf(
      'domains:\n  primary: example.org\nbus:\n  duplicateWindow: 60\n  ackWait: 60\n',
    );
    assert.equal(problems.length, 1);
    assert.match(
      problems[0]!,
      /^bus\.duplicateWindow: 60 s is not longer than bus\.ackWait \(60 s\): .* make the duplicate window longer than ackWait/,
    );
    loadConfig({
      text: 'domains:\n  primary: example.org\nbus:\n  duplicateWindow: 61\n  ackWait: 60\n',
      env: {},
    });
  });

  test('dns.cacheMaxTtl: 300 by default, 0 allowed (cache off), a negative one refused by name', () => {
    assert.equal(loadConfig({ text: 'domains:\n  primary: example.org\n', env: {} }).dns.cacheMaxTtl, 300);
    const off = loadConfig({ text: 'domains:\n  primary: example.org\ndns:\n  cacheMaxTtl: 0\n', env: {} });
    assert.equal(off.dns.cacheMaxTtl, 0);
    const problems = problemsOf('domains:\n  primary: example.org\ndns:\n  cacheMaxTtl: -5\n');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^dns\.cacheMaxTtl: /);
  });

  test('TLS-RPT reports without egress.dnsResolver are refused with the fix', () => {
    const problems = problemsOf(
      'domains:\n  primary: example.org\negress:\n  tlsReports:\n    enabled: true\n',
    );
    assert.equal(problems.length, 1);
    assert.match(
      problems[0]!,
      /^egress\.tlsReports\.enabled: .*a validating resolver in egress\.dnsResolver with it — set one/,
    );
    const c = loadConfig({
      text: 'domains:\n  primary: example.org\negress:\n  dnsResolver: 127.0.0.1:53\n  tlsReports:\n    enabled: true\n',
      env: {},
    });
    assert.equal(c.egress.tlsReports.hour, 1);
  });

  test('hash mode without a key fails; with one it loads', () => {
    assert.deepEqual(problemsOf('domains: { primary: example.org }\nlog: { addresses: hash }\n'), [
      'log.hashKey: missing while log.addresses is "hash" — set a key: a string, { file: /path } or { env: NAME } ((config text):2:6)',
    ]);
    const c = loadConfig({
      text: 'domains: { primary: example.org }\nlog: { addresses: hash, hashKey: k1 }\n',
      env: {},
    });
    assert.equal(c.log.hashKey, 'k1');
  });

  test('a YAML syntax error names line and column without quoting the source line', () => {
    const lines = problemsOf(
      'domains:\n  primary: example.org\nnats:\n  password: hunter2: x\n',
      {},
      's.yaml',
    );
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^s\.yaml:4:13: YAML syntax error: .+ — fix the YAML here$/);
    assert.ok(!lines[0]!.includes('hunter2'));
  });

  test('a file that is not a mapping, and a file that does not exist', () => {
    assert.match(
      problemsOf('- a\n- b\n')[0]!,
      /^\(top level\): expected a mapping of config keys, got a list/,
    );
    assert.throws(
      () => loadConfig({ file: join(dir, 'nope.yaml'), env: {} }),
      (err: Error) =>
        err instanceof ConfigError && /nope\.yaml: cannot read the config file \(ENOENT\)/.test(err.message),
    );
  });

  test('without file or text the configuration comes from the environment', () => {
    const c = loadConfig({ env: { SLUICE_DOMAINS__PRIMARY: 'example.org' } });
    assert.equal(c.domains.primary, 'example.org');
    assert.deepEqual(problemsOf('', {}), [
      'domains: missing — expected a mapping with the keys primary, aliases',
    ]);
  });
});

describe('secrets', () => {
  test('{ file } is read relative to the config file, minus one trailing newline', () => {
    writeFileSync(join(dir, 'hash-key'), 'line one\nkey\n');
    const file = join(dir, 'sluice.yaml');
    writeFileSync(
      file,
      'domains: { primary: example.org }\nlog: { addresses: hash, hashKey: { file: hash-key } }\n',
    );
    assert.equal(loadConfig({ file, env: {} }).log.hashKey, 'line one\nkey');
  });

  test('{ env } is read from the environment given', () => {
    const c = loadConfig({
      text: 'domains: { primary: example.org }\nnats: { user: u, password: { env: NATS_PW } }\n',
      env: { NATS_PW: 's3cret' },
    });
    assert.equal(c.nats.password, 's3cret');
  });

  test('a missing file, an empty file and an unset variable are named, all at once', () => {
    writeFileSync(join(dir, 'empty'), '\n');
    const missing = join(dir, 'no-such-secret');
    const text = [
      'domains: { primary: example.org }',
      `nats: { password: { file: ${missing} }, token: { env: NATS_TOKEN } }`,
      `log: { addresses: hash, hashKey: { file: ${join(dir, 'empty')} } }`,
      '',
    ].join('\n');
    assert.deepEqual(problemsOf(text, {}), [
      `nats.password: secret file ${missing} does not exist — create it or correct the path`,
      'nats.token: environment variable NATS_TOKEN is not set — set it, or give the secret another way',
      `log.hashKey: secret file ${join(dir, 'empty')} is empty — write the secret into it`,
    ]);
  });

  test('a secret path that is a directory is named', () => {
    const lines = problemsOf(`domains: { primary: example.org }\nnats: { token: { file: ${dir} } }\n`);
    assert.deepEqual(lines, [`nats.token: secret file ${dir} is a directory — name the file inside it`]);
  });

  test('a wrong secret value is described by its kind, never shown', () => {
    const lines = problemsOf('domains: { primary: example.org }\nnats: { password: 987654321 }\n', {
      SLUICE_NATS__TOKEN: '{filee: /x}',
    });
    assert.equal(lines.length, 2);
    for (const l of lines) {
      assert.match(l, /expected a string, \{ file: \/path \} or \{ env: NAME \}, got a (number|mapping)/);
      assert.ok(!l.includes('987654321') && !l.includes('filee'), l);
    }
  });
});

describe('parseConfig', () => {
  test('validates an object, applying defaults and resolving secrets', () => {
    const c = parseConfig(
      {
        domains: { primary: 'example.org' },
        nats: { token: { env: 'T' } },
        ingress: { listen: [{ port: 0 }] },
      },
      'test',
      { env: { T: 'tok' } },
    );
    assert.equal(c.nats.token, 'tok');
    assert.deepEqual(c.ingress.listen, [{ host: '0.0.0.0', port: 0 }]);
  });

  test('throws a ConfigError naming the source', () => {
    assert.throws(
      () => parseConfig({ domains: {} }, 'e2e'),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message ===
          'invalid configuration in e2e (1 problem):\ndomains.primary: missing — expected a DNS hostname',
    );
  });

  test('rewriter.fromRewrite: off by default; an address outside our domains is refused, naming the key', () => {
    const base = { domains: { primary: 'example.org', aliases: ['example.com'] } };
    assert.equal(parseConfig(base, 't').rewriter.fromRewrite.enabled, false);
    const ok = parseConfig(
      {
        ...base,
        rewriter: { fromRewrite: { enabled: true, forwards: ['*'], address: 'noreply@example.com' } },
      },
      't',
    );
    assert.equal(ok.rewriter.fromRewrite.displayName, '{name} via {domain}');
    assert.throws(
      () =>
        parseConfig(
          { ...base, rewriter: { fromRewrite: { enabled: true, address: 'noreply@gmail.test' } } },
          't',
        ),
      (err: Error) =>
        err instanceof ConfigError &&
        /rewriter\.fromRewrite\.address: gmail\.test is not one of domains\.primary\/aliases/.test(
          err.message,
        ),
    );
  });
});
