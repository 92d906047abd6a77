/**
 * Turns zod's validation issues into ConfigProblems an operator can act on:
 * the key path, what was wrong with what was written, and what is expected
 * (from the schema: "an integer 1-65535", "one of clear, hash, drop") or a
 * "did you mean `x`?" for unknown keys and enum values. Values under a secret
 * key are described by kind only ("got a number"), never shown.
 */
import type { z } from 'zod';
import { type ConfigProblem, formatPath } from './config-error.ts';
import { describeExpected, objectKeys, pathHasSecret, schemaAt } from './schema-introspect.ts';
import { closest } from './suggest.ts';

export interface IssueContext {
  schema: z.ZodType;
  /** The data that was validated (after env overrides and secret resolution). */
  input: unknown;
  /** Where a key path came from: "file:line:col" or a SLUICE_* variable name. */
  where(path: readonly PropertyKey[], at: 'key' | 'value'): string | undefined;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let node = data;
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

/** How a wrong value is shown: quoted and shortened, or only its kind for secrets and structures. */
export function describeGot(v: unknown, secret: boolean): string {
  if (v === undefined) return 'nothing';
  if (secret) return kindOf(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (Array.isArray(v) && v.length === 0) return 'an empty list';
  return kindOf(v);
}

function oneIssue(issue: z.core.$ZodIssue, ctx: IssueContext): ConfigProblem[] {
  const path = issue.path;
  const schema = schemaAt(ctx.schema, path);
  const secret = pathHasSecret(ctx.schema, path);
  const value = valueAt(ctx.input, path);
  const got = describeGot(value, secret);
  const problem = (message: string, at: 'key' | 'value' = 'value', p: readonly PropertyKey[] = path) => ({
    path: formatPath(p),
    message,
    where: ctx.where(p, at),
  });

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = objectKeys(schema ?? ctx.schema) ?? [];
      return issue.keys.map((key) => {
        const hint = closest(key, known);
        const fix = hint ? `did you mean \`${hint}\`?` : `remove it (keys here: ${known.join(', ')})`;
        return problem(`unknown key — ${fix}`, 'key', [...path, key]);
      });
    }
    case 'invalid_key': {
      const inner = issue.issues[0]?.message ?? 'a valid key';
      const key = path.at(-1);
      return [problem(`invalid key ${JSON.stringify(String(key))} — expected ${inner}`, 'key')];
    }
    case 'invalid_value': {
      const options = issue.values.map(String);
      const hint = typeof value === 'string' ? closest(value, options) : undefined;
      return [
        problem(
          `expected one of ${options.join(', ')}, got ${got}${hint && !secret ? ` — did you mean \`${hint}\`?` : ''}`,
        ),
      ];
    }
    case 'too_small':
    case 'too_big': {
      const limit = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const word = issue.code === 'too_small' ? 'at least' : 'at most';
      if (issue.origin === 'array') {
        return [problem(`expected ${word} ${limit} item${limit === 1 ? '' : 's'}, got ${got}`)];
      }
      if (issue.origin === 'string') {
        const text =
          limit === 1 && word === 'at least' ? 'a non-empty string' : `${word} ${limit} characters`;
        return [problem(`expected ${text}, got ${got}`)];
      }
      break;
    }
    case 'custom':
      // Cross-key rules already say what is wrong and what to do.
      if (issue.message.includes(' — ')) return [problem(issue.message)];
      return [problem(`expected ${issue.message}, got ${got}`)];
    default:
      break;
  }
  if (value === undefined) {
    return [problem(`missing — expected ${schema ? describeExpected(schema) : 'a value'}`)];
  }
  const expected = schema ? describeExpected(schema) : issue.message;
  return [problem(`expected ${expected}, got ${got}`)];
}

export function problemsFromIssues(issues: readonly z.core.$ZodIssue[], ctx: IssueContext): ConfigProblem[] {
  return issues.flatMap((issue) => oneIssue(issue, ctx));
}
