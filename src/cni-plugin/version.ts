/** CNI spec versions Tern accepts, and the result shape each one expects. */
import { TernError } from '../lib/errors';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST: CniVersion = '1.1.0';

export function checkVersion(v: unknown): CniVersion {
  if (typeof v !== 'string' || !v) throw new TernError('INVALID_CONFIG', 'cniVersion: missing (field "cniVersion")');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new TernError('INCOMPATIBLE_VERSION', `cniVersion ${v} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  return v as CniVersion;
}

function cmp(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export const atLeast = (v: string, min: string): boolean => cmp(v, min) >= 0;

/** Which verbs a config version allows: CHECK came with 0.4.0, GC and STATUS with 1.1.0. */
export function requireVersionFor(command: string, v: CniVersion): void {
  const min = command === 'CHECK' ? '0.4.0' : command === 'GC' || command === 'STATUS' ? '1.1.0' : '0.3.0';
  if (!atLeast(v, min)) throw new TernError('INCOMPATIBLE_VERSION', `${command} needs cniVersion ${min} or later, config has ${v}`);
}
