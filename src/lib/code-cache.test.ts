import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheFileFor } from './code-cache';

// Each case runs a fresh Node process on the built loader, as a CNI binary
// does: the cache is read at a process's start and written at its exit.
let dir: string;
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function bundleWith(body: string): string {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-cc-'));
  const file = path.join(dir, 'b.cjs');
  fs.writeFileSync(file, body);
  return file;
}

describe('code cache for bundled binaries', () => {
  const built = path.join(__dirname, '../../dist/src/lib/code-cache.js');
  const run = (bundle: string, hash: string, command = 'ADD', exitCode = 0) => {
    const script = `
      const vm = require('node:vm');
      const Orig = vm.Script;
      vm.Script = class extends Orig { constructor(src, o) { super(src, o); process.stdout.write('given=' + !!o.cachedData + ' rejected=' + this.cachedDataRejected + ' '); } };
      const { loadBundle } = require(${JSON.stringify(built)});
      const m = loadBundle(${JSON.stringify(bundle)}, ${JSON.stringify(hash)}, (code) => code === 0 && process.env.CNI_COMMAND === 'ADD');
      m.run();
      process.exit(${exitCode});`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, CNI_COMMAND: command } });
    return { out: r.stdout + r.stderr, status: r.status };
  };

  it('compiles on the first ADD, keeps the code, and the next start takes it', () => {
    const b = bundleWith(`exports.run = () => process.stdout.write('ran ' + require('node:path').basename(__filename) + ' ' + typeof require('node:os').cpus);`);
    expect(run(b, 'h1').out).toBe('given=false rejected=undefined ran b.cjs function');
    expect(fs.existsSync(cacheFileFor(b, 'h1'))).toBe(true);
    expect(run(b, 'h1').out).toBe('given=true rejected=false ran b.cjs function');
  });

  it('a cache is named by the content hash: a rebuilt bundle of the same length never runs the old code', () => {
    const b = bundleWith(`exports.run = () => process.stdout.write('one');`);
    run(b, 'aaaa');
    fs.writeFileSync(b, `exports.run = () => process.stdout.write('two');`); // same length: V8 alone would take the old cache
    expect(run(b, 'bbbb').out).toBe('given=false rejected=undefined two');
    expect(run(b, 'bbbb').out).toBe('given=true rejected=false two');
  });

  it('writes only after a successful ADD, and a refused cache is replaced', () => {
    const b = bundleWith(`exports.run = () => process.stdout.write('x');`);
    const cache = cacheFileFor(b, 'h');
    run(b, 'h', 'DEL');
    expect(fs.existsSync(cache)).toBe(false);
    run(b, 'h', 'ADD', 1);
    expect(fs.existsSync(cache)).toBe(false);
    fs.writeFileSync(cache, 'not a V8 cache');
    expect(run(b, 'h').out).toBe('given=true rejected=true x');
    expect(run(b, 'h').out).toBe('given=true rejected=false x');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('an unwritable cache directory costs only the compile', () => {
    const b = bundleWith(`exports.run = () => process.stdout.write('y');`);
    fs.mkdirSync(cacheFileFor(b, 'h')); // a directory where the file would go: the rename fails
    const r = run(b, 'h');
    expect(r).toEqual({ out: 'given=false rejected=undefined y', status: 0 });
  });
});
