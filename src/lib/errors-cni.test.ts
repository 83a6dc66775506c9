import { describe, expect, it } from 'vitest';
import { TernError } from './errors';
import { cniErrorJson, cniErrorOutcome, EXIT_ERROR } from './errors-cni';

describe('CNI error boundary', () => {
  const table: { name: string; e: unknown; code: number; details?: string }[] = [
    { name: 'version', e: new TernError('INCOMPATIBLE_VERSION', 'x'), code: 1 },
    { name: 'env', e: new TernError('INVALID_ENV', 'x'), code: 4 },
    { name: 'I/O', e: new TernError('IO_FAILURE', 'x'), code: 5 },
    { name: 'decode', e: new TernError('DECODE_FAILURE', 'x'), code: 6 },
    { name: 'config', e: new TernError('INVALID_CONFIG', 'x'), code: 7 },
    { name: 'busy', e: new TernError('TRY_AGAIN_LATER', 'x'), code: 11 },
    { name: 'status', e: new TernError('NOT_READY', 'x'), code: 50 },
    { name: 'exhausted', e: new TernError('IPAM_EXHAUSTED', 'x'), code: 101 },
    { name: 'exists', e: new TernError('ALREADY_EXISTS', 'x'), code: 102 },
    { name: 'taken', e: new TernError('CONFLICT', 'x'), code: 103 },
    { name: 'check', e: new TernError('CHECK_FAILED', 'x'), code: 104 },
    { name: 'kernel', e: new TernError('UNSUPPORTED_KERNEL', 'x', { details: '8021q' }), code: 105, details: '8021q' },
    { name: 'unmapped code', e: new TernError('NOT_FOUND', 'x'), code: 999 },
    { name: 'not a TernError', e: new RangeError('x'), code: 999 },
    { name: 'details and cause', e: new TernError('IO_FAILURE', 'x', { details: 'EEXIST', cause: new Error('Request rejected: EEXIST') }), code: 5, details: 'EEXIST: Request rejected: EEXIST' },
    { name: 'cause only', e: new TernError('IO_FAILURE', 'x', { cause: new Error('boom') }), code: 5, details: 'boom' },
  ];
  for (const t of table) {
    it(`${t.name} -> ${t.code}`, () => {
      const j = JSON.parse(cniErrorJson('0.4.0', t.e));
      expect(j).toEqual({ cniVersion: '0.4.0', code: t.code, msg: 'x', ...(t.details ? { details: t.details } : {}) });
      expect(cniErrorOutcome(t.e).exitCode).toBe(EXIT_ERROR);
    });
  }
});
