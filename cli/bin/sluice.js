#!/usr/bin/env node
// The `sluice` command. Sluice runs on the Node 24 that `npm install` puts in
// node_modules (the `node` package); if this file was started by an older
// system node, re-run it under the project's own runtime.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const projectNode = join(here, '..', '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(projectNode)) {
    process.stderr.write(
      `sluice: needs Node 24 (this is ${process.version}); run 'make setup' to install it\n`,
    );
    process.exit(1);
  }
  const r = spawnSync(projectNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
} else {
  await import('../src/main.ts');
}
