/**
 * Loading a configuration: read the YAML file (or text), apply SLUICE_*
 * environment overrides, replace secret references by their strings, and
 * validate against the schema with its defaults. Anything wrong — YAML syntax,
 * unknown keys, wrong types, missing secret files, unset variables — is
 * collected and thrown as one ConfigError listing every problem with its
 * file:line:column (or variable), so an operator fixes them in one go.
 *
 * Empty values (`nats:` with everything below commented out) mean "use the
 * default", like an absent key. Relative secret file paths start from the
 * config file's directory.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigProblem } from './config-error.ts';
import { applyEnvOverrides } from './env-overrides.ts';
import { describeGot, problemsFromIssues } from './issue-messages.ts';
import { configSchema, type SluiceConfig } from './schema.ts';
import { resolveSecrets } from './secrets.ts';
import { parseYamlSource } from './yaml-source.ts';

export interface LoadConfigOptions {
  /** YAML config file. Without file and text, the configuration comes from the environment alone. */
  file?: string;
  /** Environment for SLUICE_* overrides and { env: NAME } secrets (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** YAML text to use instead of reading `file` (`file` then only names the source in messages). */
  text?: string;
}

export interface ParseConfigOptions {
  /** Environment for { env: NAME } secrets (default: process.env). No SLUICE_* overrides are applied. */
  env?: NodeJS.ProcessEnv;
  /** Directory relative secret file paths start from (default: the working directory). */
  baseDir?: string;
}

interface ValidateContext {
  source: string;
  env: NodeJS.ProcessEnv;
  baseDir: string;
  /** Problems found before validation (environment overrides). */
  earlier: ConfigProblem[];
  where(path: readonly PropertyKey[], at: 'key' | 'value'): string | undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Remove null values from mappings (an empty `key:` means "default"); list items stay as they are. */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v))
    return v.map((item) => (isPlainObject(item) || Array.isArray(item) ? dropNulls(item) : item));
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) if (val !== null) out[k] = dropNulls(val);
  return out;
}

function validate(data: Record<string, unknown>, ctx: ValidateContext): SluiceConfig {
  const secretProblems = resolveSecrets(data, { env: ctx.env, baseDir: ctx.baseDir });
  const result = configSchema.safeParse(data);
  const problems = [
    ...ctx.earlier,
    ...(result.success
      ? []
      : problemsFromIssues(result.error.issues, { schema: configSchema, input: data, where: ctx.where })),
    ...secretProblems,
  ];
  if (problems.length > 0 || !result.success) throw new ConfigError(ctx.source, problems);
  // Every secret reference was replaced by its string above, so the output holds strings only.
  return result.data as unknown as SluiceConfig;
}

/**
 * Validate configuration data that is already parsed (tests, programmatic use):
 * defaults applied, secrets resolved, every problem in one ConfigError.
 */
export function parseConfig(obj: unknown, sourceName: string, opts: ParseConfigOptions = {}): SluiceConfig {
  const data = obj === undefined || obj === null ? {} : dropNulls(structuredClone(obj));
  if (!isPlainObject(data)) {
    throw new ConfigError(sourceName, [
      { path: '(top level)', message: `expected a mapping of config keys, got ${describeGot(data, false)}` },
    ]);
  }
  return validate(data, {
    source: sourceName,
    env: opts.env ?? process.env,
    baseDir: opts.baseDir ?? process.cwd(),
    earlier: [],
    where: () => undefined,
  });
}

/** Read, override, resolve and validate a configuration; throws ConfigError listing every problem. */
export function loadConfig(opts: LoadConfigOptions = {}): SluiceConfig {
  const env = opts.env ?? process.env;
  const source = opts.file ?? (opts.text !== undefined ? '(config text)' : '(environment)');
  let text = opts.text;
  if (text === undefined && opts.file !== undefined) {
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new ConfigError(source, [
        {
          path: opts.file,
          message: `cannot read the config file (${code}) — check the path and permissions`,
        },
      ]);
    }
  }
  const yaml = text === undefined ? undefined : parseYamlSource(text, source);
  if (yaml && yaml.problems.length > 0) throw new ConfigError(source, yaml.problems);
  const raw = dropNulls(yaml?.value ?? {});
  if (!isPlainObject(raw)) {
    throw new ConfigError(source, [
      {
        path: '(top level)',
        message: `expected a mapping of config keys, got ${describeGot(raw, false)} — start with keys like \`domains:\``,
        where: yaml?.locate([]),
      },
    ]);
  }
  const overridden = applyEnvOverrides(raw, env);
  const where = (path: readonly PropertyKey[], at: 'key' | 'value') => {
    for (let n = path.length; n >= 1; n--) {
      const variable = overridden.origins.get(JSON.stringify(path.slice(0, n)));
      if (variable) return variable;
    }
    return yaml?.locate(path, at);
  };
  // Again after the overrides: SLUICE_HTTP__LISTEN=null unsets a key.
  return validate(dropNulls(overridden.value) as Record<string, unknown>, {
    source,
    env,
    baseDir: opts.file !== undefined ? dirname(resolve(opts.file)) : process.cwd(),
    earlier: overridden.problems,
    where,
  });
}
