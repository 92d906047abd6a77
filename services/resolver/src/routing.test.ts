/**
 * The routing model as plain functions: configuration in, targets, errors,
 * routes and parts out. No bus, no network.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ConfigInput, parseConfig } from '@sluice/config';
import { type Envelope, parseEnvelope, partIdOf } from '@sluice/proto';
import { expandRecipient } from './expand.ts';
import { lookupAddress } from './lookup.ts';
import { routeFor } from './route.ts';
import { buildRoutingTable, type RoutingTable } from './routing-table.ts';
import { failedBranches, resolveRecipients, splitByRoute } from './split.ts';

function table(extra: Partial<ConfigInput> = {}): RoutingTable {
  return buildRoutingTable(
    parseConfig({ domains: { primary: 'example.org', aliases: ['example.com'] }, ...extra }, 'routing-test'),
  );
}

const targetsOf = (t: RoutingTable, a: string) => expandRecipient(t, a).targets.map((x) => x.address);

describe('expansion', () => {
  test('a domain alias maps user@alias onto user@primary', () => {
    const t = table({ routing: { forwards: { 'info@example.org': ['info@elsewhere.test'] } } });
    const exp = expandRecipient(t, 'info@example.com');
    assert.deepEqual(exp.targets, [
      { address: 'info@elsewhere.test', via: ['info@example.com', 'info@example.org'] },
    ]);
    assert.deepEqual(exp.errors, []);
    assert.ok(
      exp.trail.includes(
        'example.com is an alias domain of example.org: info@example.com -> info@example.org',
      ),
    );
    assert.ok(
      exp.trail.includes('forward info@example.org -> info@elsewhere.test (config routing.forwards)'),
    );
  });

  test('local parts and domains compare case-insensitively; the outside address keeps its case', () => {
    const t = table({ routing: { aliases: { 'info@example.org': ['Alice@Outside.test'] } } });
    // The config schema lower-cases keys and targets; what the client typed is compared the same way.
    assert.deepEqual(targetsOf(t, 'INFO@Example.COM'), ['alice@outside.test']);
    assert.deepEqual(targetsOf(t, 'Bob@Outside.TEST'), ['Bob@outside.test']);
  });

  test('aliases chain through aliases and forwards, recursively', () => {
    const t = table({
      routing: {
        aliases: { 'info@example.org': ['team@example.org'], 'team@example.org': ['alice@example.org'] },
        forwards: { 'alice@example.org': ['alice@gmail.test'] },
      },
    });
    const exp = expandRecipient(t, 'info@example.org');
    assert.deepEqual(exp.targets, [
      { address: 'alice@gmail.test', via: ['info@example.org', 'team@example.org', 'alice@example.org'] },
    ]);
    assert.deepEqual(exp.sources, ['config routing.aliases', 'config routing.forwards']);
    assert.equal(exp.rulesApplied, 3);
  });

  test('fan-out is deduplicated: a member reached twice is delivered once, by the first path', () => {
    const t = table({
      routing: {
        aliases: {
          'all@example.org': ['dev@example.org', 'ops@example.org', 'carol@outside.test'],
          'dev@example.org': ['alice@outside.test', 'bob@outside.test'],
          'ops@example.org': ['bob@outside.test', 'carol@outside.test', 'dave@outside.test'],
        },
      },
    });
    const exp = expandRecipient(t, 'all@example.org');
    assert.deepEqual(
      exp.targets.map((x) => x.address),
      ['alice@outside.test', 'bob@outside.test', 'carol@outside.test', 'dave@outside.test'],
    );
    assert.deepEqual(exp.targets[1]!.via, ['all@example.org', 'dev@example.org']);
    // Depth-first: carol is first reached through ops, before all's own direct entry.
    assert.deepEqual(exp.targets[2]!.via, ['all@example.org', 'ops@example.org']);
    assert.ok(exp.trail.includes('carol@outside.test already reached by another path: delivered once'));
    assert.deepEqual(exp.errors, []);
  });

  test('a loop is cut and reported, not followed forever; the branches that resolve still count', () => {
    const t = table({
      routing: {
        aliases: {
          'a@example.org': ['b@example.org', 'x@outside.test'],
          'b@example.org': ['c@example.org'],
          'c@example.org': ['a@example.org'],
        },
      },
    });
    const exp = expandRecipient(t, 'a@example.org');
    assert.deepEqual(
      exp.targets.map((x) => x.address),
      ['x@outside.test'],
    );
    assert.equal(exp.errors.length, 1);
    assert.equal(exp.errors[0]!.kind, 'loop');
    assert.equal(
      exp.errors[0]!.message,
      'alias loop: a@example.org -> b@example.org -> c@example.org -> a@example.org (cut here)',
    );
    const reply = lookupAddress(t, 'b@example.org');
    assert.equal(reply.result, 'tempfail');
    assert.equal(reply.reason, 'alias loop in local configuration');
  });

  test('a loop through a domain alias is caught too', () => {
    const t = table({ routing: { aliases: { 'x@example.org': ['x@example.com'] } } });
    const exp = expandRecipient(t, 'x@example.org');
    assert.deepEqual(exp.targets, []);
    assert.equal(exp.errors[0]!.kind, 'loop');
  });

  test('a chain deeper than routing.maxDepth is cut with an error naming the chain', () => {
    const aliases: Record<string, string[]> = {};
    for (let i = 0; i < 12; i++) aliases[`l${i}@example.org`] = [`l${i + 1}@example.org`];
    aliases['l12@example.org'] = ['end@outside.test'];
    const t = table({ routing: { aliases, maxDepth: 10 } });
    const exp = expandRecipient(t, 'l0@example.org');
    assert.deepEqual(exp.targets, []);
    assert.equal(exp.errors.length, 1);
    assert.equal(exp.errors[0]!.kind, 'depth');
    assert.match(
      exp.errors[0]!.message,
      /deeper than routing\.maxDepth \(10\) at l10@example\.org: l0@example\.org -> /,
    );
    assert.equal(lookupAddress(t, 'l0@example.org').result, 'tempfail');
    // Exactly maxDepth steps is fine.
    assert.deepEqual(targetsOf(t, 'l3@example.org'), ['end@outside.test']);
  });

  test('an alias listing itself keeps a copy in its mailbox (Postfix virtual(5) semantics)', () => {
    const withMailboxes = table({
      routing: { aliases: { 'bob@example.org': ['bob@example.org', 'bob@outside.test'] } },
      transports: { 'example.org': { host: '10.0.0.5', port: 24, lmtp: true } },
    });
    assert.deepEqual(targetsOf(withMailboxes, 'bob@example.org'), ['bob@example.org', 'bob@outside.test']);
    const noMailboxes = table({
      routing: { aliases: { 'bob@example.org': ['bob@example.org', 'bob@outside.test'] } },
    });
    const exp = expandRecipient(noMailboxes, 'bob@example.org');
    assert.deepEqual(
      exp.targets.map((x) => x.address),
      ['bob@outside.test'],
    );
    assert.equal(exp.errors[0]!.kind, 'unknown');
  });

  test('a catch-all takes what has no rule of its own; explicit entries win', () => {
    const t = table({
      routing: {
        aliases: { '@example.org': ['catchall@outside.test'], 'info@example.org': ['info@outside.test'] },
      },
    });
    assert.deepEqual(targetsOf(t, 'random@example.org'), ['catchall@outside.test']);
    assert.deepEqual(targetsOf(t, 'random@example.com'), ['catchall@outside.test']);
    assert.deepEqual(targetsOf(t, 'info@example.org'), ['info@outside.test']);
    const exp = expandRecipient(t, 'random@example.org');
    assert.ok(
      exp.trail.includes(
        'alias catch-all @example.org for random@example.org -> catchall@outside.test (config routing.aliases)',
      ),
    );
  });

  test('an alias domain may have a catch-all of its own', () => {
    const t = table({
      routing: {
        aliases: { '@example.com': ['legacy@outside.test'], 'info@example.org': ['info@outside.test'] },
      },
    });
    assert.deepEqual(targetsOf(t, 'anything@example.com'), ['legacy@outside.test']);
    assert.deepEqual(targetsOf(t, 'info@example.org'), ['info@outside.test']);
  });

  test('an address of ours without a rule: unknown, unless its domain has a mailbox transport', () => {
    const t = table();
    const exp = expandRecipient(t, 'nobody@example.org');
    assert.deepEqual(exp.targets, []);
    assert.deepEqual(
      exp.errors.map((e) => e.kind),
      ['unknown'],
    );
    const withMailboxes = table({
      transports: { 'example.org': { host: 'mail.internal', port: 24, lmtp: true } },
    });
    const mbox = expandRecipient(withMailboxes, 'nobody@example.com');
    assert.deepEqual(mbox.targets, [{ address: 'nobody@example.org', via: ['nobody@example.com'] }]);
    assert.ok(
      mbox.trail.includes(
        'nobody@example.org is a mailbox on the transport for example.org (mail.internal:24, LMTP)',
      ),
    );
  });
});

describe('lookupAddress (RCPT time)', () => {
  const t = table({
    routing: {
      aliases: {
        'info@example.org': ['alice@example.org', 'bob@example.org'],
        'ghost@example.org': ['gone@example.org'],
      },
      forwards: { 'alice@example.org': ['alice@forward.test'], 'bob@example.org': ['bob@forward.test'] },
    },
    transports: { 'forward.test': { host: '127.0.0.1', port: 2525 } },
  });

  test('ok: targets and a trail that says which rule from which source', () => {
    const reply = lookupAddress(t, 'info@example.com');
    assert.equal(reply.result, 'ok');
    assert.deepEqual(reply.targets, ['alice@forward.test', 'bob@forward.test']);
    assert.deepEqual(reply.trail, [
      'example.com is an alias domain of example.org: info@example.com -> info@example.org',
      'alias info@example.org -> alice@example.org, bob@example.org (config routing.aliases)',
      'forward alice@example.org -> alice@forward.test (config routing.forwards)',
      'alice@forward.test is outside our domains',
      'forward bob@example.org -> bob@forward.test (config routing.forwards)',
      'bob@forward.test is outside our domains',
      'alice@forward.test: transport forward.test (SMTP 127.0.0.1:2525)',
      'bob@forward.test: transport forward.test (SMTP 127.0.0.1:2525)',
    ]);
  });

  test('foreign: not one of our domains', () => {
    const reply = lookupAddress(t, 'victim@elsewhere.test');
    assert.equal(reply.result, 'foreign');
    assert.equal(reply.reason, 'not one of our domains');
  });

  test('unknown: ours, no rule', () => {
    const reply = lookupAddress(t, 'nobody@example.org');
    assert.equal(reply.result, 'unknown');
    assert.equal(reply.reason, 'no such user');
    assert.deepEqual(reply.targets, []);
  });

  test('tempfail, not unknown, for an alias whose members are all gone (a config error)', () => {
    const reply = lookupAddress(t, 'ghost@example.org');
    assert.equal(reply.result, 'tempfail');
    assert.equal(reply.reason, 'alias leads to no deliverable address');
  });

  test('"Postmaster" without a domain is ours (RFC 5321 §4.5.1)', () => {
    const withPostmaster = table({
      routing: { aliases: { 'postmaster@example.org': ['admin@outside.test'] } },
    });
    assert.deepEqual(lookupAddress(withPostmaster, 'Postmaster').targets, ['admin@outside.test']);
    assert.equal(lookupAddress(withPostmaster, 'someone').result, 'unknown');
  });

  test('a 1,000-alias map with shared members resolves every alias correctly', () => {
    const aliases: Record<string, string[]> = {};
    const forwards: Record<string, string[]> = {};
    for (let i = 0; i < 1000; i++) {
      aliases[`list${i}@example.org`] = [
        `user${i % 100}@example.org`,
        `user${(i + 1) % 100}@example.org`,
        `list${(i + 1) % 1000}@example.org`,
      ];
    }
    for (let u = 0; u < 100; u++) forwards[`user${u}@example.org`] = [`user${u}@outside.test`];
    const big = table({ routing: { aliases, forwards, maxDepth: 100 } });
    assert.equal(big.rules.size, 1100);
    let tempfails = 0;
    for (let i = 0; i < 1000; i++) {
      // Every list chains into the next (a ring), so a chain of 100 lists reaches all 100 users
      // before hitting routing.maxDepth, and the ring itself is a loop: both are reported.
      const reply = lookupAddress(big, `list${i}@example.org`);
      if (reply.result === 'tempfail') tempfails++;
      assert.equal(new Set(reply.targets).size, reply.targets.length, 'no duplicate targets');
      assert.equal(reply.targets.length, 100);
    }
    assert.equal(tempfails, 1000);
    // Without the ring, a list resolves cleanly.
    const flat: Record<string, string[]> = {};
    for (let i = 0; i < 1000; i++)
      flat[`list${i}@example.org`] = [`user${i % 100}@example.org`, `user${(i + 7) % 100}@example.org`];
    const flatTable = table({ routing: { aliases: flat, forwards } });
    for (let i = 0; i < 1000; i++) {
      const reply = lookupAddress(flatTable, `list${i}@example.org`);
      assert.equal(reply.result, 'ok');
      assert.deepEqual(reply.targets, [`user${i % 100}@outside.test`, `user${(i + 7) % 100}@outside.test`]);
    }
  });
});

describe('routes', () => {
  test('transport for the domain, else the relay, else MX', () => {
    const t = table({
      transports: { 'lists.example.net': { host: 'lists.internal', port: 2525, lmtp: false } },
      relay: { host: 'smarthost.internal', port: 587 },
    });
    assert.deepEqual(routeFor(t, 'x@Lists.Example.NET'), {
      kind: 'smtp',
      name: 'lists.example.net',
      host: 'lists.internal',
      port: 2525,
      lmtp: false,
    });
    assert.deepEqual(routeFor(t, 'x@gmail.test'), {
      kind: 'smtp',
      name: 'relay',
      host: 'smarthost.internal',
      port: 587,
      lmtp: false,
    });
    assert.deepEqual(routeFor(table(), 'x@gmail.test'), { kind: 'mx', domain: 'gmail.test' });
  });
});

describe('splitByRoute', () => {
  const t = table({
    routing: {
      aliases: {
        'info@example.org': ['alice@example.org', 'bob@b.test', 'carol@a.test'],
        'ghost@example.org': ['nobody@example.org'],
      },
      forwards: { 'alice@example.org': ['alice@b.test'] },
    },
    transports: { 'b.test': { host: '127.0.0.1', port: 2525 } },
  });
  const envelope: Envelope = {
    v: 1,
    id: '01JTESTQUEUEID0000000000AB',
    receivedAt: '2026-01-01T00:00:00.000Z',
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'sender@sender.test' },
    recipients: [
      { address: 'info@example.com', original: 'info@example.com', status: 'pending', notify: ['FAILURE'] },
      { address: 'bob@b.test', original: 'bob@b.test', status: 'pending' },
      { address: 'ghost@example.org', original: 'ghost@example.org', status: 'pending' },
    ],
    body: { kind: 'inline', size: 3, sha256: 'a'.repeat(64) },
    prepend: [],
    hops: [{ stage: 'ingress', instance: 'i1', at: '2026-01-01T00:00:00.000Z' }],
  };
  const hop = { stage: 'resolver', instance: 'r1', at: '2026-01-01T00:00:01.000Z' };

  test('one part per route, sorted by route key, content-derived part ids, deduplicated targets', () => {
    const parts = splitByRoute(envelope, resolveRecipients(t, envelope), hop);
    assert.deepEqual(
      parts.map((p) => [p.partId, p.route]),
      [
        [partIdOf(envelope.id, 'mx:a.test', ['carol@a.test']), { kind: 'mx', domain: 'a.test' }],
        [
          partIdOf(envelope.id, 'smtp:b.test', ['alice@b.test', 'bob@b.test']),
          { kind: 'smtp', name: 'b.test', host: '127.0.0.1', port: 2525, lmtp: false },
        ],
      ],
    );
    assert.deepEqual(parts[1]!.recipients, [
      {
        address: 'alice@b.test',
        original: 'info@example.com',
        via: ['info@example.com', 'info@example.org', 'alice@example.org'],
        notify: ['FAILURE'],
        status: 'pending',
        // The address of ours whose rule sent it to a foreign target: told when the target refuses.
        forwardOwner: 'alice@example.org',
      },
      {
        address: 'bob@b.test',
        original: 'info@example.com',
        via: ['info@example.com', 'info@example.org'],
        notify: ['FAILURE'],
        status: 'pending',
        forwardOwner: 'info@example.org',
      },
    ]);
    assert.deepEqual(
      parts[0]!.recipients.map((r) => r.address),
      ['carol@a.test'],
    );
    for (const p of parts) {
      assert.deepEqual(p.hops, [...envelope.hops, hop]);
      assert.equal(p.body, envelope.body);
    }
    // A redelivery produces the same parts.
    assert.deepEqual(splitByRoute(envelope, resolveRecipients(t, envelope), hop), parts);
  });

  test('after a routing change a part with other content gets another id, the same content the same id', () => {
    const before = splitByRoute(envelope, resolveRecipients(t, envelope), hop);
    // Table 2: alice's forward now goes to a.test (she moves to the other route); b.test unchanged for bob.
    const t2 = table({
      routing: {
        aliases: {
          'info@example.org': ['alice@example.org', 'bob@b.test', 'carol@a.test'],
          'ghost@example.org': ['nobody@example.org'],
        },
        forwards: { 'alice@example.org': ['alice@a.test'] },
      },
      transports: { 'b.test': { host: '127.0.0.1', port: 2525 } },
    });
    const after = splitByRoute(envelope, resolveRecipients(t2, envelope), hop);
    assert.deepEqual(
      after.map((p) => p.recipients.map((r) => r.address)),
      [['alice@a.test', 'carol@a.test'], ['bob@b.test']],
    );
    for (const p of after) assert.ok(!before.some((b) => b.partId === p.partId), `${p.partId} is new`);
    // Table 3: only the transport's host changed: same route key, same recipients, same ids.
    const t3 = table({
      routing: {
        aliases: {
          'info@example.org': ['alice@example.org', 'bob@b.test', 'carol@a.test'],
          'ghost@example.org': ['nobody@example.org'],
        },
        forwards: { 'alice@example.org': ['alice@b.test'] },
      },
      transports: { 'b.test': { host: '127.0.0.2', port: 2526 } },
    });
    const same = splitByRoute(envelope, resolveRecipients(t3, envelope), hop);
    assert.deepEqual(
      same.map((p) => p.partId),
      before.map((p) => p.partId),
    );
  });

  test('fields this version does not know travel on in every part and recipient', () => {
    const future = parseEnvelope({
      ...envelope,
      fromTheFuture: { level: 'top' },
      mailFrom: { ...envelope.mailFrom, futureSender: 1 },
      recipients: envelope.recipients.map((r) => ({ ...r, futureRecipient: r.address })),
    });
    const parts = splitByRoute(future, resolveRecipients(t, future), hop);
    for (const p of parts) {
      assert.deepEqual(p['fromTheFuture'], { level: 'top' });
      assert.equal(p.mailFrom['futureSender'], 1);
      // Each final target keeps the field of the accepted recipient it came from.
      for (const r of p.recipients) assert.equal(r['futureRecipient'], r.original);
    }
  });

  test('branches that resolve to nothing are reported with the recipient they came from', () => {
    const failed = failedBranches(resolveRecipients(t, envelope));
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.recipient.address, 'ghost@example.org');
    assert.equal(failed[0]!.error.kind, 'unknown');
    assert.equal(failed[0]!.error.address, 'nobody@example.org');
    assert.deepEqual(failed[0]!.error.via, ['ghost@example.org']);
  });
});
