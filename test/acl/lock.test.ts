import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Netns, REPO, Sandbox } from '../sandbox';
import { defaultLock } from '../../src/acl/applier';

/**
 * The node's ACL lock between processes: 6 processes each do 40
 * read-increment-write rounds on one counter under the lock. Any overlap
 * loses an increment; CI once caught a reader seeing the lock vanish.
 */
describe('ACL lock across processes', () => {
  it('no two holders at once: 6 × 40 increments, none lost', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-lock-'));
    try {
      const lock = path.join(dir, 'acl.lock');
      const counter = path.join(dir, 'n');
      fs.writeFileSync(counter, '0');
      const script = `
        const fs = require('fs');
        const { acquireLock } = require(${JSON.stringify(path.join(REPO, 'dist/src/lib/lock.js'))});
        for (let i = 0; i < 40; i++) {
          const release = acquireLock(${JSON.stringify(lock)});
          const n = Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8'));
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
          fs.writeFileSync(${JSON.stringify(counter)}, String(n + 1));
          release();
        }`;
      const runs = Array.from({ length: 6 }, () => new Promise<number>((resolve) => spawn(process.execPath, ['-e', script], { stdio: 'inherit' }).on('exit', (c) => resolve(c ?? 1))));
      expect(await Promise.all(runs)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Number(fs.readFileSync(counter, 'utf8'))).toBe(240);
      expect(fs.readdirSync(dir).sort()).toEqual(['n']); // no lock or per-process file left
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/**
 * The lock is per namespace: the appliers of two node namespaces on one host
 * (two nodes of a test cluster, a bench beside a test run) never wait for each
 * other, and one namespace has one lock whether its appliers enter it or name
 * its path. It was one /run/tern/acl-self.lock for every entered namespace.
 */
describe('ACL lock per namespace', () => {
  it('entered namespaces get their own lock, the same one as by path', async () => {
    const sb = new Sandbox('acllock');
    try {
      const [a, b] = [sb.netns('a'), sb.netns('b')];
      const lockOf = (ns: Netns): string => ns.must(process.execPath, ['-p', `require(${JSON.stringify(path.join(REPO, 'dist/src/acl/applier.js'))}).defaultLock()`]).trim();
      const [la, lb] = [lockOf(a), lockOf(b)];
      expect(la).not.toBe(lb);
      expect(la).toBe(defaultLock(a.path));
      expect(lb).toBe(defaultLock(b.path));
    } finally {
      await sb.cleanup();
    }
  });
});
