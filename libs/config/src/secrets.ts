/**
 * Secret resolution: every `secret` key of the schema (passwords, tokens, the
 * address hash key) may be written as the string itself, as `{ file: path }` —
 * the file's contents minus one trailing newline, the way Kubernetes and Docker
 * mount secrets — or as `{ env: NAME }`. They are replaced by the string before
 * validation, so services only ever see strings. Problems name the file or
 * variable, never the secret's value.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { type ConfigProblem, formatPath } from './config-error.ts';
import { configSchema } from './schema.ts';
import { isSecret, unwrap } from './schema-introspect.ts';

export interface SecretSources {
  env: NodeJS.ProcessEnv;
  /** Directory that relative secret file paths start from (the config file's directory). */
  baseDir: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The string a secret reference stands for, or the problem with it; undefined if `v` is no reference. */
function readSecret(v: unknown, from: SecretSources): { value: string } | { problem: string } | undefined {
  if (!isPlainObject(v) || Object.keys(v).length !== 1) return undefined;
  if (typeof v.file === 'string' && v.file !== '') {
    const path = resolve(from.baseDir, v.file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT')
        return { problem: `secret file ${path} does not exist — create it or correct the path` };
      if (code === 'EACCES') {
        return { problem: `secret file ${path} is not readable (permission denied) — let this user read it` };
      }
      if (code === 'EISDIR')
        return { problem: `secret file ${path} is a directory — name the file inside it` };
      return {
        problem: `secret file ${path} cannot be read (${code ?? (err as Error).message}) — check the path`,
      };
    }
    const value = text.replace(/\r?\n$/, '');
    if (value === '') return { problem: `secret file ${path} is empty — write the secret into it` };
    return { value };
  }
  if (typeof v.env === 'string' && v.env !== '') {
    const value = from.env[v.env];
    if (value === undefined) {
      return { problem: `environment variable ${v.env} is not set — set it, or give the secret another way` };
    }
    if (value === '') return { problem: `environment variable ${v.env} is empty — put the secret in it` };
    return { value };
  }
  return undefined;
}

/**
 * Replace every secret reference in `data` (in place) by its string, walking the
 * schema alongside the data. Returns the problems (missing files, unset variables).
 */
export function resolveSecrets(
  data: unknown,
  from: SecretSources,
  schema: z.ZodType = configSchema,
  path: (string | number)[] = [],
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const visit = (
    s: z.ZodType,
    holder: Record<string | number, unknown>,
    key: string | number,
    at: typeof path,
  ) => {
    const v = holder[key];
    if (isSecret(s)) {
      const r = readSecret(v, from);
      if (r && 'value' in r) holder[key] = r.value;
      else if (r) problems.push({ path: formatPath(at), message: r.problem });
      return;
    }
    problems.push(...resolveSecrets(v, from, s, at));
  };
  const { core } = unwrap(schema);
  if (core instanceof z.ZodObject && isPlainObject(data)) {
    for (const [key, s] of Object.entries(core.shape as Record<string, z.ZodType>)) {
      if (Object.hasOwn(data, key)) visit(s, data, key, [...path, key]);
    }
  } else if (core instanceof z.ZodArray && Array.isArray(data)) {
    const items = data as unknown as Record<number, unknown>;
    for (let i = 0; i < data.length; i++) visit(core._zod.def.element as z.ZodType, items, i, [...path, i]);
  } else if (core instanceof z.ZodRecord && isPlainObject(data)) {
    for (const key of Object.keys(data))
      visit(core._zod.def.valueType as z.ZodType, data, key, [...path, key]);
  }
  return problems;
}
