#!/usr/bin/env node
// The `sluice` command. Sluice runs on the Node 24 that `npm install` puts in
// node_modules (the `node` package); if this file was started by an older
// system node, run it under the project's own runtime, passing signals on so
// that SIGTERM still means a graceful stop.
import { spawn } from 'node:child_process';
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
  const child = spawn(projectNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  // SIGTERM/SIGHUP are sent to this pid (kill, systemd, Kubernetes): pass them on. SIGINT from a
  // terminal already reaches the child through the process group; forwarding it would be a second
  // signal (an immediate exit), so it is only kept from killing this wrapper.
  for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  process.on('SIGINT', () => {});
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
} else {
  await import('../src/main.ts');
}
