/**
 * Per-interface sysctls, written through /proc/sys of the calling thread's
 * network namespace (so call inside NetnsHandle.run for another namespace).
 */
import * as fs from 'node:fs';
import { TernError } from '../lib/errors';
import type { SysctlSetting } from './endpoint-plan';

export type { SysctlSetting };

export function writeSysctl(s: SysctlSetting): void {
  try {
    fs.writeFileSync(`/proc/sys/${s.key}`, s.value);
  } catch (e) {
    throw new TernError('IO_FAILURE', `sysctl ${s.key.replace(/\//g, '.')}=${s.value} failed`, { cause: e });
  }
}

export function readSysctl(key: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
