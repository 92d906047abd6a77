/**
 * Routing follows the config file without a restart: the directory holding it
 * is watched (editors and Kubernetes ConfigMaps replace the file rather than
 * write it in place, which a watch on the file itself would miss), and after
 * a short quiet period the file is loaded and validated with the one config
 * schema. A valid file is handed to `onConfig` (the resolver builds a new
 * table and swaps it in); an invalid one is refused with the loader's reason
 * (the key and the fix) and the table in use keeps serving. A file whose text
 * did not change is not reloaded.
 */
import { readFileSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { loadConfig, type SluiceConfig } from '@sluice/config';

export interface ConfigWatchOptions {
  file: string;
  onConfig: (config: SluiceConfig) => void;
  onRefused: (reason: string) => void;
  /** Quiet period before a change is read (default 200 ms). */
  debounceMs?: number;
  env?: NodeJS.ProcessEnv;
}

export function watchConfigFile(opts: ConfigWatchOptions): () => void {
  const name = basename(opts.file);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // The text in use now (read at once: a change right after start must not be taken for it).
  let lastText: string | undefined;
  try {
    lastText = readFileSync(opts.file, 'utf8');
  } catch {
    lastText = undefined;
  }
  const reload = async () => {
    let text: string;
    try {
      text = await readFile(opts.file, 'utf8');
    } catch (err) {
      // Mid-replace (renamed away, not yet back): the next event reloads it.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      opts.onRefused(`cannot read ${opts.file}: ${(err as Error).message}`);
      return;
    }
    if (stopped || text === lastText) return;
    lastText = text;
    let config: SluiceConfig;
    try {
      config = loadConfig({ file: opts.file, text, env: opts.env ?? process.env });
    } catch (err) {
      opts.onRefused((err as Error).message);
      return;
    }
    opts.onConfig(config);
  };
  const watcher = watch(dirname(opts.file), (_event, changed) => {
    if (changed !== null && changed !== name) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), opts.debounceMs ?? 200);
  });
  watcher.unref();
  return () => {
    stopped = true;
    clearTimeout(timer);
    watcher.close();
  };
}
