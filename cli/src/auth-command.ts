/**
 * `sluice auth refresh|bans|unban|check`: the submission authentication at
 * 3 a.m. — the credential snapshot and the brute-force bans, read and
 * changed in their NATS buckets with the running Sluice's config
 * (docs/submission-auth.md, "Operating"). This module parses and
 * dispatches; each subcommand is its own module (auth-refresh.ts,
 * auth-bans.ts, auth-unban.ts, auth-check.ts).
 * Exit status: as each subcommand says; 2 usage or config, 69 NATS unreachable.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '@sluice/config';
import type { CommandIo } from './srs-command.ts';

export const AUTH_USAGE = `usage:
  sluice auth refresh [--force] [--json]        read LDAP into the credential snapshot now
  sluice auth bans [IP|LOGIN] [--all] [--json]  brute-force bans in force (or every record of IP / LOGIN)
  sluice auth unban IP|LOGIN [--json]           lift the bans of a network or a user
  sluice auth check LOGIN [--json]              is LOGIN in the snapshot: uid, hash formats, snapshot age, bans
  sluice auth SUBCOMMAND --help                 help on one subcommand
All take --config FILE (else $SLUICE_CONFIG, else the example) and need submission.auth in it.`;

const CONFIG = '  -c, --config FILE  configuration file (else $SLUICE_CONFIG, else the example)';
const JSON_LINE = '      --json         the answer as JSON';

const HELP = {
  refresh: `usage: sluice auth refresh [--force] [--config FILE] [--json]
Read the LDAP directory (submission.auth.ldap, else routing.ldap) into the credential snapshot now,
from this machine; every submission replica takes the change at once. A read that would remove more
than the directory's maxDeleteShare of the users is held back and says why.
Exit 0 applied or unchanged, 1 held back or LDAP unreachable, 69 NATS unreachable.
${CONFIG}
      --force        apply a refresh the deletion guard held back (check the directory first)
${JSON_LINE}`,
  bans: `usage: sluice auth bans [IP|LOGIN] [--all] [--config FILE] [--json]
The brute-force bans in force for every replica: networks, users from a network, users braked
(454 except from their usual networks), with the time left, failures and bans so far.
Names are stored hashed: users in the credential snapshot are shown by uid, anything else by hash.
With an IP (IPv6: its /64) or a login name: every record of it, banned or not. Exit 0.
${CONFIG}
      --all          also the records that count failures without a ban
${JSON_LINE}`,
  unban: `usage: sluice auth unban IP|LOGIN [--config FILE] [--json]
Lift the bans of a client network (IPv6: its /64; every user's ban from it too) or of a user (from
every network, and the brake), with their failure counts and escalation, for every replica.
Exit 0 a ban was lifted, 1 there was none.
${CONFIG}
${JSON_LINE}`,
  check: `usage: sluice auth check LOGIN [--config FILE] [--json]
Whether LOGIN (uid, uid@domain or an address of the entry) can log in as far as the credential
snapshot goes: its uid and login names, the format of each stored hash (never the hash), the
snapshot's version, size and age, and the user's bans. Exit 0 in the snapshot, 1 not.
${CONFIG}
${JSON_LINE}`,
} as const;
type Subcommand = keyof typeof HELP;

const stdio: CommandIo = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`sluice: ${l}\n`),
};

export async function runAuthCommand(argv: string[], io: CommandIo = stdio): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean' },
        force: { type: 'boolean' },
        all: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    parsed = parse();
  } catch (err) {
    io.err(`auth: ${(err as Error).message.split(/\.(?:\s|$)/)[0]} (try 'sluice auth --help')`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [sub, arg, ...extra] = positionals;
  if (!sub || !(sub in HELP)) {
    if (values.help || !sub) {
      (values.help ? io.out : io.err)(AUTH_USAGE);
      return values.help ? 0 : 2;
    }
    io.err(`auth: unknown subcommand '${sub}' (try 'sluice auth --help')`);
    return 2;
  }
  const subcommand = sub as Subcommand;
  if (values.help) {
    io.out(HELP[subcommand]);
    return 0;
  }
  const wantsArg = subcommand === 'unban' || subcommand === 'check';
  const mayArg = wantsArg || subcommand === 'bans';
  if ((wantsArg && !arg) || (!mayArg && arg) || extra.length > 0) {
    io.err(HELP[subcommand]);
    return 2;
  }
  if (values.force && subcommand !== 'refresh') {
    io.err(`auth ${subcommand}: --force is for 'sluice auth refresh'`);
    return 2;
  }

  const [{ loadProcessConfig }, { credentialOptionsOf }, { connectCliBus }] = await Promise.all([
    import('@sluice/runtime'),
    import('@sluice/credentials'),
    import('./nats-connect.ts'),
  ]);
  let opts: ReturnType<typeof credentialOptionsOf>;
  let pc: ReturnType<typeof loadProcessConfig>;
  try {
    pc = loadProcessConfig(values.config);
    opts = credentialOptionsOf(pc.config);
  } catch (err) {
    if (err instanceof ConfigError) io.err(err.message);
    else io.err(`auth: ${(err as Error).message} in ${values.config ?? 'the configuration'}`);
    return 2;
  }
  let bus: Awaited<ReturnType<typeof connectCliBus>>['bus'];
  let kv: Awaited<ReturnType<typeof bus.authBuckets>>;
  try {
    ({ bus } = await connectCliBus(pc));
  } catch (err) {
    io.err((err as Error).message);
    return 69;
  }
  try {
    try {
      kv = await bus.authBuckets();
    } catch (err) {
      io.err(
        `auth: the authentication buckets cannot be opened (${(err as Error).message}): has 'sluice run' with this config run once?`,
      );
      return 69;
    }
    const ctx = { kv, opts, io, json: values.json === true, now: Date.now };
    switch (subcommand) {
      case 'refresh':
        return await (await import('./auth-refresh.ts')).authRefresh(ctx, values.force === true);
      case 'bans':
        return await (await import('./auth-bans.ts')).authBans(ctx, arg, values.all === true);
      case 'unban':
        return await (await import('./auth-unban.ts')).authUnban(ctx, arg!);
      case 'check':
        return await (await import('./auth-check.ts')).authCheck(ctx, arg!);
    }
  } finally {
    await bus.close();
  }
}
