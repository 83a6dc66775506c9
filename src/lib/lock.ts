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

/**
 * This process's owner file in a lock directory, holding its pid: each lock
 * it takes is a hard link to it (link(2) makes the lock appear with its owner
 * already in it, so no one reads it empty). Made once per directory and
 * removed at exit, not made and removed around every lock: where /run is on
 * disk, those were two of the four file operations of every lock, and the
 * daemon takes two locks per ADD.
 */
const owners = new Map<string, string>();
let removeAtExit = false;
function ownerFile(dir: string): string {
  let f = owners.get(dir);
  if (f) return f;
  fs.mkdirSync(dir, { recursive: true });
  f = path.join(dir, `.owner-${process.pid}`);
  fs.writeFileSync(f, String(process.pid));
  owners.set(dir, f);
  if (!removeAtExit) process.once('exit', () => owners.forEach((o) => fs.rmSync(o, { force: true })));
  removeAtExit = true;
  return f;
}

/** One attempt: the release when taken, undefined while a live owner holds it (throws past the deadline). */
function tryLock(file: string, deadline: number): (() => void) | undefined {
  const dir = path.dirname(file);
  for (let remade = false; ; ) {
    try {
      fs.linkSync(ownerFile(dir), file);
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // The owner file or its directory was removed under us (an operator cleaning /run/tern): make it again, once.
      if (code === 'ENOENT' && !remade) {
        owners.delete(dir);
        remade = true;
        continue;
      }
      if (code !== 'EEXIST') throw e;
    }
    const owner = readOwner(file);
    if (owner === undefined) continue; // released meanwhile
    if (!alive(owner)) {
      // Take over a dead owner's lock, unless someone already did, and drop the owner file it left.
      if (readOwner(file) === owner) fs.rmSync(file, { force: true });
      if (owner !== process.pid) fs.rmSync(path.join(dir, `.owner-${owner}`), { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new TernError('TRY_AGAIN_LATER', `lock ${file} held by pid ${owner}`);
    return undefined;
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
