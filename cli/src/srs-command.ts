/**
 * `sluice srs forward ADDRESS` and `sluice srs reverse ADDRESS`: what our SRS
 * makes of a sender, and what an SRS address of ours stands for (for
 * operators answering "where did this bounce come from?"). Secrets and
 * domain come from the config (srs.*), or from `--domain D --secret-file F`
 * (a postsrsd secrets file: one secret per line, the first signs).
 * Exit status: 0 done, 1 refused (the reason on stderr), 2 usage.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, srsDomainOf } from '@sluice/config';
import { loadProcessConfig } from '@sluice/runtime';
import { parseSecretsFile, Srs, SrsError } from '@sluice/srs';

export const SRS_USAGE = `usage:
  sluice srs forward ADDRESS [--config FILE | --domain D --secret-file F]   the SRS form of a sender
  sluice srs reverse ADDRESS [--config FILE | --domain D --secret-file F]   the address an SRS address stands for`;

export interface CommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const stdio: CommandIo = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`sluice: ${l}\n`),
};

function codecFrom(values: { config?: string; domain?: string; 'secret-file'?: string }): Srs {
  if (values.domain || values['secret-file']) {
    if (!values.domain || !values['secret-file']) throw new Error('--domain and --secret-file go together');
    const secrets = parseSecretsFile(readFileSync(values['secret-file'], 'utf8'));
    if (secrets.length === 0) throw new Error(`${values['secret-file']} holds no secret`);
    return new Srs({ domain: values.domain, secrets });
  }
  const config = loadProcessConfig(values.config).config;
  const domain = srsDomainOf(config);
  if (!domain)
    throw new Error(
      'SRS is off in this config (srs.secrets is empty) — set it, or give --domain and --secret-file',
    );
  return new Srs({
    domain,
    secrets: config.srs.secrets,
    maxAgeDays: config.srs.maxAgeDays,
    hashLength: config.srs.hashLength,
    separator: config.srs.separator,
  });
}

export async function runSrsCommand(argv: string[], io: CommandIo = stdio): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        domain: { type: 'string' },
        'secret-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    parsed = parse();
  } catch (err) {
    io.err((err as Error).message);
    return 2;
  }
  const [action, address, ...extra] = parsed.positionals;
  if (
    parsed.values.help ||
    !action ||
    !address ||
    extra.length > 0 ||
    !['forward', 'reverse'].includes(action)
  ) {
    (parsed.values.help ? io.out : io.err)(SRS_USAGE);
    return parsed.values.help ? 0 : 2;
  }
  let srs: Srs;
  try {
    srs = codecFrom(parsed.values);
  } catch (err) {
    io.err(err instanceof ConfigError ? err.message : (err as Error).message);
    return 2;
  }
  if (action === 'forward') {
    try {
      const r = srs.forward(address);
      io.out(r.address);
      if (r.kind === 'rewritten' && r.form === 'hash-only') {
        io.err('note: too long for SRS; hash-only form, a bounce to it cannot be returned');
      }
      return 0;
    } catch (err) {
      if (err instanceof SrsError) {
        io.err(err.message);
        return 1;
      }
      throw err;
    }
  }
  const r = srs.reverse(address);
  if (!r.ok) {
    io.err(`${address}: ${r.reason}`);
    return 1;
  }
  io.out(r.address);
  return 0;
}
