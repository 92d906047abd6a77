import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import { configDocsPath, renderConfigDocs, updateConfigDocs } from './docs.ts';
import { configSchema } from './schema.ts';
import { unwrap } from './schema-introspect.ts';

test('docs/configuration.md is up to date with the schema (node libs/config/src/docs.ts --write)', () => {
  const markdown = readFileSync(configDocsPath, 'utf8');
  assert.equal(markdown, updateConfigDocs(markdown));
});

test('the reference names every key of the schema with its default', () => {
  const docs = renderConfigDocs();
  const keys: string[] = [];
  const walk = (schema: z.ZodType, path: string) => {
    const { core } = unwrap(schema);
    if (core instanceof z.ZodObject) {
      for (const [k, child] of Object.entries(core.shape as Record<string, z.ZodType>)) {
        walk(child, path ? `${path}.${k}` : k);
      }
    } else {
      keys.push(path);
    }
  };
  walk(configSchema, '');
  assert.ok(keys.length > 50, `${keys.length} keys`);
  const rows = new Map(
    docs
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) => {
        const [key, ...rest] = l.split(/ +\| +/).map((c) => c.replace(/^\| |`/g, '').trim());
        return [key!, rest] as const;
      }),
  );
  for (const key of keys) assert.ok(rows.has(key), key);
  assert.deepEqual(rows.get('ingress.listen[].port')?.slice(0, 2), ['integer 0-65535', '**required**']);
  assert.deepEqual(rows.get('bus.ackWait')?.slice(0, 2), ['number > 0', '60']);
  assert.deepEqual(rows.get('log.hashKey')?.slice(0, 2), ['secret', 'unset']);
});
