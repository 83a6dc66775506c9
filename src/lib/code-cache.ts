/**
 * Start a bundled one-shot binary (the CNI plugins) with V8's compiled code
 * kept across runs. Each ADD or DEL is a new process that would parse and
 * compile the same ~0.7 MB bundle again; Node 22 keeps that work with
 * `module.enableCompileCache()`, Node 20 has no such call, so this does the
 * same for one file with `vm.Script`'s cached data.
 *
 * The cache sits beside the bundle and is named by the bundle's content hash
 * (V8 itself checks only the source's length, its own version and flags), so
 * a rebuilt bundle never runs with another one's code. It is written once, by
 * the first successful ADD (the command that runs the most code, compiled
 * lazily as it ran), atomically; V8 refusing it (a Node upgrade) writes it
 * again. A cache that cannot be read or written only costs the compile.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { createRequire, wrap } from 'node:module';

export function cacheFileFor(bundle: string, hash: string): string {
  return `${bundle}.${hash}.${process.arch}.v8cache`;
}

/** Load `bundle` (CommonJS) through the cache; returns its exports. `warm`: whether this run's compiled code is worth keeping. */
export function loadBundle(bundle: string, hash: string, warm: (exitCode: number) => boolean): Record<string, unknown> {
  const cacheFile = cacheFileFor(bundle, hash);
  let cachedData: Buffer | undefined;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    /* first run, or not readable: compile */
  }
  const script = new vm.Script(wrap(fs.readFileSync(bundle, 'utf8')), { filename: bundle, cachedData });
  if (!cachedData || script.cachedDataRejected) {
    process.once('exit', (code) => {
      if (!warm(code)) return;
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
        fs.renameSync(tmp, cacheFile);
      } catch {
        fs.rmSync(tmp, { force: true });
      }
    });
  }
  const mod = { exports: {} as Record<string, unknown> };
  (script.runInThisContext() as (...a: unknown[]) => void).call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, path.dirname(bundle));
  return mod.exports;
}

/** Entry of a bundled CNI binary's launcher. */
export function runBundle(bundle: string, hash: string): void {
  const exports = loadBundle(bundle, hash, (code) => code === 0 && process.env.CNI_COMMAND === 'ADD');
  (exports.run as () => void)();
}
