/**
 * One request per attachment (container ID, ifname) at a time, in the daemon
 * and across processes (daemon, standalone plugin, a killed plugin's
 * leftovers). A runtime that kills a slow ADD sends DEL at once; through the
 * daemon the ADD keeps running, so the DEL waits for it and then undoes it
 * whole, instead of finding nothing and letting the ADD finish after it.
 * The lock file is per node namespace and attachment; a dead holder's lock is
 * taken over, so a kill -9 of a standalone plugin never blocks its DEL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { acquireLockAsync } from '../lib/lock';
import { hostVethName } from '../dataplane/endpoint-plan';

const LOCK_DIR = '/run/tern/attach';
const queues = new Map<string, Promise<unknown>>();

export function attachmentLockFile(containerId: string, ifname: string): string {
  const ns = fs.statSync('/proc/self/ns/net').ino;
  return path.join(LOCK_DIR, `${ns}-${hostVethName(containerId, ifname)}.lock`);
}

/**
 * Run `fn` holding the attachment's lock. Callers queue in call order inside
 * this process (the queue entry is made synchronously, so requests keep the
 * order in which they arrived), then take the file lock without blocking the
 * event loop, so independent attachments proceed in parallel.
 */
export function withAttachmentLock<T>(containerId: string, ifname: string, fn: () => Promise<T>): Promise<T> {
  const file = attachmentLockFile(containerId, ifname);
  const run = (queues.get(file) ?? Promise.resolve())
    .catch(() => undefined)
    .then(async () => {
      const release = await acquireLockAsync(file);
      try {
        return await fn();
      } finally {
        release();
      }
    });
  queues.set(file, run);
  const forget = () => {
    if (queues.get(file) === run) queues.delete(file);
  };
  run.then(forget, forget);
  return run;
}
