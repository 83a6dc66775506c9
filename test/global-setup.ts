/**
 * Backstop for the per-file sandboxes: after the whole run, remove every
 * namespace under this run's prefix and kill every tracked PID still alive.
 */
import * as fs from 'node:fs';
import { aclKnownDir, killTracked, killNetnsPids, listNetns, pidDir, runPrefix, sh } from './sandbox';

export function setup(): void {
  runPrefix();
}

export function teardown(): void {
  const prefix = runPrefix();
  let pids: string[] = [];
  try {
    pids = fs.readdirSync(pidDir());
  } catch {
    /* none */
  }
  for (const p of pids) killTracked(Number(p), 'SIGKILL');
  for (const ns of listNetns().filter((n) => n.startsWith(`${prefix}-`))) {
    killNetnsPids(ns);
    sh('ip', ['netns', 'del', ns]);
  }
  fs.rmSync(pidDir(), { recursive: true, force: true });
  fs.rmSync(aclKnownDir(prefix), { recursive: true, force: true });
}
