/**
 * Environment overrides: SLUICE_<PATH>=<value> sets one config key, for
 * containers and one-off runs without editing the file. Path segments are
 * joined by `__` and matched against the schema's keys ignoring case and `_`,
 * so SLUICE_INGRESS__MAX_MESSAGE_BYTES and SLUICE_INGRESS__MAXMESSAGEBYTES both
 * set ingress.maxMessageBytes; a list index is a number segment
 * (SLUICE_INGRESS__LISTEN__0__PORT); an existing map entry is found by the letters
 * and digits of its key (SLUICE_TRANSPORTS__EXAMPLE_NET__PORT). Values are YAML (scalars or flow style:
 * `2525`, `true`, `["nats://a:4222", "nats://b:4222"]`, `{file: /run/k}`), except
 * that a key expecting a string gets the text as written (SLUICE_NATS__PASSWORD=0123
 * stays "0123"). An empty value counts as unset.
 *
 * A variable naming no key is an error with a suggestion, like a typo in the
 * file. Not config: SLUICE_CONFIG (the config file path, read by the CLI) and
 * the variables Kubernetes injects for a Service named sluice-* (SLUICE_…_SERVICE_HOST,
 * SLUICE_…_PORT_25_TCP_ADDR, …), which are ignored.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type ConfigProblem, formatPath } from './config-error.ts';
import { configSchema, secretSchema } from './schema.ts';
import { childSchema, unwrap } from './schema-introspect.ts';
import { closest, normalizeKey } from './suggest.ts';

export const ENV_PREFIX = 'SLUICE_';

export interface EnvOverrides {
  /** The configuration with the overrides applied (a copy; the input is untouched). */
  value: Record<string, unknown>;
  problems: ConfigProblem[];
  /** Which variable set which key: JSON.stringify(path) -> variable name. */
  origins: Map<string, string>;
}

/** Names that start with SLUICE_ but are not config keys. */
export function isIgnoredEnvName(name: string): boolean {
  // SLUICE_WORKER marks a worker process of `processes: N` (libs/runtime worker-processes.ts).
  if (name === 'SLUICE_CONFIG' || name === 'SLUICE_WORKER') return true;
  const rest = name.slice(ENV_PREFIX.length);
  if (rest.includes('__')) return false;
  // Kubernetes service links: <SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT[_<NAME>], <SVC>_PORT, <SVC>_PORT_<n>_<PROTO>[_…].
  return /(^|_)(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/.test(
    rest,
  );
}

function acceptsText(schema: z.ZodType): boolean {
  const { core } = unwrap(schema);
  return core._zod.def.type === 'string' || core instanceof z.ZodEnum || core === secretSchema;
}

/** The value of a variable as the key expects it: YAML, or the text itself for string keys. */
function parseEnvValue(raw: string, schema: z.ZodType): { value: unknown } | { error: string } {
  let parsed: unknown;
  try {
    parsed = parseYaml(raw);
  } catch (err) {
    if (acceptsText(schema)) return { value: raw };
    const first = (err as Error).message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    return { error: `not valid YAML (${first})` };
  }
  if (acceptsText(schema) && (parsed === null || typeof parsed !== 'object')) return { value: raw };
  return { value: parsed };
}

function setIn(target: Record<string, unknown>, path: readonly (string | number)[], value: unknown): void {
  let node: Record<string | number, unknown> = target;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    const next = node[seg];
    if (next === null || typeof next !== 'object') {
      node[seg] = typeof path[i + 1] === 'number' ? [] : {};
    }
    node = node[seg] as Record<string | number, unknown>;
  }
  node[path.at(-1)!] = value;
}

function getIn(target: unknown, path: readonly (string | number)[]): unknown {
  let node = target;
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}

/** Resolve a variable's segments to a key path, or say what is wrong. */
function resolvePath(
  segments: string[],
  data: unknown,
  schema: z.ZodType,
): { path: (string | number)[]; schema: z.ZodType } | { error: string } {
  const path: (string | number)[] = [];
  let s: z.ZodType = schema;
  for (const seg of segments) {
    if (seg === '') return { error: 'empty path segment — separate keys with exactly two underscores (__)' };
    const { core } = unwrap(s);
    if (core instanceof z.ZodObject) {
      const keys = Object.keys(core.shape);
      const key = keys.find((k) => normalizeKey(k) === normalizeKey(seg));
      if (!key) {
        const hint = closest(seg, keys);
        const here = path.length ? `${formatPath(path)} has no key` : 'there is no config key';
        return {
          error: `${here} "${seg.toLowerCase()}" — ${hint ? `did you mean \`${hint}\`?` : `known keys: ${keys.join(', ')}`}`,
        };
      }
      path.push(key);
    } else if (core instanceof z.ZodArray) {
      if (!/^\d+$/.test(seg)) {
        return {
          error: `${formatPath(path)} is a list — use a number to pick an item, or set the whole list`,
        };
      }
      path.push(Number(seg));
    } else if (core instanceof z.ZodRecord) {
      // Map keys are data (domains, addresses) with characters a variable name cannot hold: match
      // an existing key by its letters and digits (EXAMPLE_NET -> example.net), else take the segment.
      const existing = getIn(data, path);
      const keys = existing && typeof existing === 'object' ? Object.keys(existing) : [];
      const bare = (k: string) => k.toLowerCase().replace(/[^a-z0-9]/g, '');
      path.push(keys.find((k) => bare(k) === bare(seg)) ?? seg.toLowerCase());
    } else {
      return { error: `${formatPath(path)} has no keys below it — set ${formatPath(path)} itself` };
    }
    s = childSchema(s, path.at(-1)!)!;
  }
  return { path, schema: s };
}

export function applyEnvOverrides(
  base: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  schema: z.ZodType = configSchema,
): EnvOverrides {
  const value = structuredClone(base);
  const problems: ConfigProblem[] = [];
  const origins = new Map<string, string>();
  const names = Object.keys(env)
    .filter((n) => n.startsWith(ENV_PREFIX) && n.length > ENV_PREFIX.length && !isIgnoredEnvName(n))
    .filter((n) => (env[n] ?? '') !== '')
    // Shorter paths first, so SLUICE_NATS__SERVERS refines what SLUICE_NATS set.
    .sort((a, b) => a.split('__').length - b.split('__').length || a.localeCompare(b));
  for (const name of names) {
    const target = resolvePath(name.slice(ENV_PREFIX.length).split('__'), value, schema);
    if ('error' in target) {
      problems.push({ path: name, message: target.error });
      continue;
    }
    const parsed = parseEnvValue(env[name]!, target.schema);
    if ('error' in parsed) {
      problems.push({
        path: formatPath(target.path),
        message: `${parsed.error} — quote lists as [a, b]`,
        where: name,
      });
      continue;
    }
    setIn(value, target.path, parsed.value);
    origins.set(JSON.stringify(target.path), name);
  }
  return { value, problems, origins };
}
