/**
 * The CNI boundary: Tern's error codes become CNI error JSON and a process
 * exit code here, and nowhere else. Both CNI binaries (tern, tern-ipam) and
 * the daemon's CNI socket answer through it.
 */
import * as fs from 'node:fs';
import { TernError, messageOf, type ErrorCode } from './errors';

/** CNI spec error codes; 100+ are Tern's own; anything unmapped is 999. */
const CNI_CODES: Partial<Record<ErrorCode, number>> = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_READY: 50,
  IPAM_EXHAUSTED: 101,
  ALREADY_EXISTS: 102,
  CONFLICT: 103,
  CHECK_FAILED: 104,
  UNSUPPORTED_KERNEL: 105,
};
export const CNI_INTERNAL = 999;

/** Exit status of a CNI invocation: 0 with a result, 1 with error JSON on stdout. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;

/** The version the answer is written for when the request's own is unknown. */
export const CNI_FALLBACK_VERSION = '1.0.0';

export function cniErrorCode(e: unknown): number {
  return e instanceof TernError ? (CNI_CODES[e.code] ?? CNI_INTERNAL) : CNI_INTERNAL;
}

/** What a CNI invocation prints and how it exits. */
export interface Outcome {
  exitCode: number;
  stdout: string;
}

/** `details` carries the error's own details and what caused it (e.g. the kernel's errno text). */
function detailsOf(e: unknown): string | undefined {
  if (!(e instanceof TernError)) return undefined;
  const parts = [e.details, e.cause !== undefined ? messageOf(e.cause) : undefined].filter((x): x is string => !!x);
  return parts.length ? [...new Set(parts)].join(': ') : undefined;
}

export function cniErrorJson(version: string, e: unknown): string {
  const details = detailsOf(e);
  return JSON.stringify({ cniVersion: version, code: cniErrorCode(e), msg: messageOf(e), ...(details ? { details } : {}) });
}

export function cniErrorOutcome(e: unknown, version = CNI_FALLBACK_VERSION): Outcome {
  return { exitCode: EXIT_ERROR, stdout: cniErrorJson(version, e) };
}

/** Process entry of a CNI binary: stdin and the environment in, the outcome out, then exit. */
export function runCniProcess(handle: (env: NodeJS.ProcessEnv, stdin: string) => Promise<Outcome>): void {
  let stdin = '';
  try {
    stdin = fs.readFileSync(0, 'utf8');
  } catch {
    /* no stdin (VERSION may come without) */
  }
  void handle(process.env, stdin)
    .catch((e: unknown) => cniErrorOutcome(e))
    .then((o) => {
      if (o.stdout) fs.writeSync(1, o.stdout + '\n');
      process.exit(o.exitCode);
    });
}
