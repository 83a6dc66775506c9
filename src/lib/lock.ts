/**
 * Per-node locks between processes (CNI invocations, ternctl, the daemon):
 * a lock file that holds its owner's pid, taken over when that owner is dead.
 * `withNodeLock` also queues callers inside one process, since the file lock
 * waits synchronously and would otherwise spin against its own holder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TernError } from './errors';

/** Run `fn` holding the lock file (synchronous callers). */
export function withLock<T>(file: string, fn: () => T, timeoutMs = 60_000): T {
  const release = acquireLock(file, timeoutMs);
  try {
    return fn();
  } finally {
    release();
  }
}

/** Take the lock (waiting for a live owner, up to `timeoutMs`); returns its release. */
export function acquireLock(file: string, timeoutMs = 60_000): () => void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = tryLock(file, deadline);
    if (r) return r;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

/** acquireLock without blocking the event loop while another process holds the lock. */
export async function acquireLockAsync(file: string, timeoutMs = 60_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 2; ; wait = Math.min(wait * 2, 20)) {
    const r = tryLock(file, deadline);
    if (r) return r;
    await new Promise((res) => setTimeout(res, wait));
  }
}

/** One attempt: the release when taken, undefined while a live owner holds it (throws past the deadline). */
function tryLock(file: string, deadline: number): (() => void) | undefined {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // The lock appears with its owner's pid already in it (link(2) of a written file), so no one reads it empty.
  const mine = `${file}.${process.pid}`;
  fs.writeFileSync(mine, String(process.pid));
  try {
    for (;;) {
      try {
        fs.linkSync(mine, file);
        return () => fs.rmSync(file, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const owner = readOwner(file);
      if (owner === undefined) continue; // released meanwhile
      if (!alive(owner)) {
        // Take over a dead owner's lock, unless someone already did.
        if (readOwner(file) === owner) fs.rmSync(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new TernError('TRY_AGAIN_LATER', `lock ${file} held by pid ${owner}`);
      return undefined;
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

function readOwner(file: string): number | undefined {
  try {
    return Number(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const queues = new Map<string, Promise<unknown>>();

/** Run async `fn` holding the lock file, after any earlier holder in this process. */
export async function withNodeLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const run = (queues.get(file) ?? Promise.resolve()).catch(() => undefined).then(async () => {
    const release = acquireLock(file);
    try {
      return await fn();
    } finally {
      release();
    }
  });
  queues.set(file, run);
  try {
    return await run;
  } finally {
    if (queues.get(file) === run) queues.delete(file);
  }
}
