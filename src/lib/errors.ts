/**
 * One error base with a stable code. Codes are Tern's own; each boundary maps
 * them to its wire form once (CNI error JSON and exit codes in errors-cni.ts, BGP
 * NOTIFICATION in the session, file/line/field for policy files).
 */
export type ErrorCode =
  | 'INCOMPATIBLE_VERSION' // CNI 1
  | 'UNSUPPORTED_FIELD' // CNI 2
  | 'UNKNOWN_CONTAINER' // CNI 3
  | 'INVALID_ENV' // CNI 4
  | 'IO_FAILURE' // CNI 5
  | 'DECODE_FAILURE' // CNI 6
  | 'INVALID_CONFIG' // CNI 7
  | 'TRY_AGAIN_LATER' // CNI 11
  | 'NOT_READY' // CNI 50 (STATUS)
  | 'IPAM_EXHAUSTED'
  | 'ALREADY_EXISTS'
  | 'CHECK_FAILED'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNSUPPORTED_KERNEL'
  | 'INTERNAL';

export class TernError extends Error {
  readonly code: ErrorCode;
  readonly details?: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: string }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'TernError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isTernError(e: unknown, code?: ErrorCode): e is TernError {
  return e instanceof TernError && (code === undefined || e.code === code);
}

/** Kernel errno of a failed netlink/syscall, when there is one. */
export function errnoOf(e: unknown): number | undefined {
  if (e && typeof e === 'object') {
    const o = e as { errno?: unknown; code?: unknown };
    if (typeof o.errno === 'number') return Math.abs(o.errno);
    if (typeof o.code === 'string' && /^E\d+$/.test(o.code)) return Number(o.code.slice(1));
  }
  return undefined;
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
