import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireLock, withLock } from './lock';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-lk-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const built = path.join(__dirname, '../../dist/src/lib/lock.js');

describe('lock files', () => {
  it('a lock is a link to the holder\'s owner file: it names the holder, and is gone on release', () => {
    const lock = path.join(dir, 'a.lock');
    const release = acquireLock(lock);
    expect(fs.readFileSync(lock, 'utf8')).toBe(String(process.pid));
    expect(fs.statSync(lock).ino).toBe(fs.statSync(path.join(dir, `.owner-${process.pid}`)).ino);
    release();
    expect(fs.existsSync(lock)).toBe(false);
  });

  it('an owner file removed under the process (an operator cleaning /run/tern) is made again', () => {
    const lock = path.join(dir, 'b.lock');
    withLock(lock, () => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(withLock(lock, () => fs.readFileSync(lock, 'utf8'))).toBe(String(process.pid));
  });

  it('a holder killed with -9 leaves its lock and owner file; the next taker takes over and removes both', async () => {
    const lock = path.join(dir, 'c.lock');
    const holder = spawn(process.execPath, ['-e', `require(${JSON.stringify(built)}).acquireLock(${JSON.stringify(lock)}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    expect(fs.readdirSync(dir).sort()).toEqual(['.owner-' + holder.pid, 'c.lock']);
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const taker = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(built)}).withLock(${JSON.stringify(lock)}, () => console.log('took'))`], { encoding: 'utf8' });
    expect(taker.stdout.trim()).toBe('took');
    expect(fs.readdirSync(dir)).toEqual([]); // nothing left: not the dead holder's files, not the taker's
  });

  it('many locks in one process make one owner file, removed at exit', () => {
    const r = spawnSync(process.execPath, ['-e', `
      const fs = require('fs'); const { withLock } = require(${JSON.stringify(built)});
      for (let i = 0; i < 20; i++) withLock(${JSON.stringify(dir)} + '/l' + i + '.lock', () => undefined);
      console.log(JSON.stringify(fs.readdirSync(${JSON.stringify(dir)})));`], { encoding: 'utf8' });
    expect(JSON.parse(r.stdout)).toEqual([`.owner-${r.pid}`]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
