/**
 * Reading the config schema as data: which keys a section has, what a key
 * expects, its default and description, and whether it holds a secret. The
 * loader uses this to map SLUICE_* environment names onto keys, to write error
 * messages that say what was expected (and never echo a secret), and docs.ts
 * uses it to render the key reference, so all three follow the one schema.
 *
 * It looks at zod v4 schema instances (`instanceof` the classic classes and
 * their `_zod.def`), which is stable within zod 4.
 */
import { z } from 'zod';
import { secretSchema } from './schema.ts';

/** A schema with its wrappers (optional, default, describe, transform pipes) taken off. */
export interface SchemaNode {
  /** The innermost schema that checks the value. */
  core: z.ZodType;
  optional: boolean;
  /** The value is transformed after checking (lower-cased domains and addresses). */
  transformed: boolean;
  hasDefault: boolean;
  defaultValue?: unknown;
  description?: string;
}

export function unwrap(schema: z.ZodType): SchemaNode {
  const node: SchemaNode = { core: schema, optional: false, transformed: false, hasDefault: false };
  let s: z.ZodType = schema;
  for (;;) {
    if (!node.description && s.description) node.description = s.description;
    if (s instanceof z.ZodDefault) {
      if (!node.hasDefault) {
        node.hasDefault = true;
        node.defaultValue = s._zod.def.defaultValue;
      }
      s = s._zod.def.innerType as z.ZodType;
    } else if (s instanceof z.ZodOptional) {
      node.optional = true;
      s = s._zod.def.innerType as z.ZodType;
    } else if (s instanceof z.ZodPipe) {
      // value.transform(...) is a pipe from the checking schema into the transform.
      node.transformed = true;
      s = s._zod.def.in as z.ZodType;
    } else {
      break;
    }
  }
  node.core = s;
  return node;
}

/** True for a `secret` value (string, { file } or { env }). */
export function isSecret(schema: z.ZodType): boolean {
  return unwrap(schema).core === secretSchema;
}

/** The keys of an object schema, or undefined when it is not one. */
export function objectKeys(schema: z.ZodType): string[] | undefined {
  const { core } = unwrap(schema);
  return core instanceof z.ZodObject ? Object.keys(core.shape) : undefined;
}

/**
 * The schema one step down: an object's key, a list's element, a map's value.
 * Undefined when there is no such child (unknown key, or a leaf).
 */
export function childSchema(schema: z.ZodType, segment: string | number): z.ZodType | undefined {
  const { core } = unwrap(schema);
  if (core instanceof z.ZodObject) {
    const shape = core.shape as Record<string, z.ZodType>;
    return typeof segment === 'string' && Object.hasOwn(shape, segment) ? shape[segment] : undefined;
  }
  if (core instanceof z.ZodArray) return core._zod.def.element as z.ZodType;
  if (core instanceof z.ZodRecord) return core._zod.def.valueType as z.ZodType;
  return undefined;
}

/** The schema at a key path, undefined where the path leaves the schema. */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let s: z.ZodType | undefined = schema;
  for (const seg of path) {
    if (!s || typeof seg === 'symbol') return undefined;
    s = childSchema(s, seg);
  }
  return s;
}

/** True when some step of the path is a secret (its value must never be shown). */
export function pathHasSecret(schema: z.ZodType, path: readonly PropertyKey[]): boolean {
  let s: z.ZodType | undefined = schema;
  for (const seg of path) {
    if (!s) return false;
    if (isSecret(s)) return true;
    if (typeof seg === 'symbol') return false;
    s = childSchema(s, seg);
  }
  return s ? isSecret(s) : false;
}

/** The key schema of a map (record), e.g. "an address like user@example.org". */
export function recordKeySchema(schema: z.ZodType): z.ZodType | undefined {
  const { core } = unwrap(schema);
  return core instanceof z.ZodRecord ? (core._zod.def.keyType as z.ZodType) : undefined;
}

interface CheckDef {
  check: string;
  value?: number;
  inclusive?: boolean;
  format?: string;
  minimum?: number;
  error?: () => unknown;
}

function checksOf(schema: z.ZodType): CheckDef[] {
  const checks = (schema._zod.def as { checks?: Array<{ _zod: { def: CheckDef } }> }).checks ?? [];
  return checks.map((c) => c._zod.def);
}

/** The custom message of a string's format check (e.g. 'a DNS hostname'), if it has one. */
function formatMessage(schema: z.ZodType): string | undefined {
  const own = (schema._zod.def as { error?: () => unknown }).error?.();
  if (typeof own === 'string') return own;
  for (const c of checksOf(schema)) {
    if (c.check === 'string_format') {
      const msg = c.error?.();
      if (typeof msg === 'string') return msg;
    }
  }
  return undefined;
}

/** Range of a number schema as text: "1-65535", "> 0", ">= 1024", or "". */
function numberRange(schema: z.ZodNumber): string {
  let min: { value: number; inclusive: boolean } | undefined;
  let max: { value: number; inclusive: boolean } | undefined;
  for (const c of checksOf(schema)) {
    if (c.check === 'greater_than' && c.value !== undefined)
      min = { value: c.value, inclusive: !!c.inclusive };
    if (c.check === 'less_than' && c.value !== undefined) max = { value: c.value, inclusive: !!c.inclusive };
  }
  if (min?.inclusive && max?.inclusive) return `${min.value}-${max.value}`;
  const parts: string[] = [];
  if (min) parts.push(`${min.inclusive ? '>=' : '>'} ${min.value}`);
  if (max) parts.push(`${max.inclusive ? '<=' : '<'} ${max.value}`);
  return parts.join(' and ');
}

/** Strings, including the string formats (z.url() is no ZodString instance). */
function isString(schema: z.ZodType): boolean {
  return schema._zod.def.type === 'string';
}

function isInteger(schema: z.ZodNumber): boolean {
  return checksOf(schema).some((c) => c.check === 'number_format' && /int/.test(c.format ?? ''));
}

/** What a value must be, as a phrase for error messages: "an integer 1-65535", "one of clear, hash, drop". */
export function describeExpected(schema: z.ZodType): string {
  const { core } = unwrap(schema);
  if (core === secretSchema) return 'a string, { file: /path } or { env: NAME }';
  if (core instanceof z.ZodNumber) {
    const range = numberRange(core);
    return `${isInteger(core) ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}`;
  }
  if (isString(core)) return formatMessage(core) ?? 'a string';
  if (core instanceof z.ZodBoolean) return 'true or false';
  if (core instanceof z.ZodEnum) return `one of ${core.options.join(', ')}`;
  if (core instanceof z.ZodArray) return 'a list';
  if (core instanceof z.ZodObject) return `a mapping with the keys ${Object.keys(core.shape).join(', ')}`;
  if (core instanceof z.ZodRecord) return 'a mapping';
  return 'a valid value';
}

/** A short type name for the reference docs: "integer 1-65535", "list of address", "secret". */
export function typeLabel(schema: z.ZodType): string {
  const { core, transformed } = unwrap(schema);
  if (core === secretSchema) return 'secret';
  if (core instanceof z.ZodNumber) {
    const range = numberRange(core);
    return `${isInteger(core) ? 'integer' : 'number'}${range ? ` ${range}` : ''}`;
  }
  if (isString(core)) {
    const msg = formatMessage(core);
    // A hostname that is lower-cased on the way in is a mail domain.
    if (msg?.startsWith('a DNS hostname')) return transformed ? 'domain' : 'hostname';
    if (msg?.startsWith('an address')) return 'address';
    if (msg?.includes('URL')) return 'URL';
    return 'string';
  }
  if (core instanceof z.ZodBoolean) return 'boolean';
  if (core instanceof z.ZodEnum) return core.options.map((o) => `\`${String(o)}\``).join(' | ');
  if (core instanceof z.ZodArray) {
    const el = core._zod.def.element as z.ZodType;
    return `list of ${unwrap(el).core instanceof z.ZodObject ? 'mappings' : typeLabel(el)}`;
  }
  if (core instanceof z.ZodObject) return 'mapping';
  if (core instanceof z.ZodRecord) {
    const value = core._zod.def.valueType as z.ZodType;
    const valueLabel = unwrap(value).core instanceof z.ZodObject ? 'mapping' : typeLabel(value);
    return `map: ${typeLabel(core._zod.def.keyType as z.ZodType)} → ${valueLabel}`;
  }
  return 'value';
}
