import { describe, expect, it } from 'vitest';
import { MAX_REQUEST, decodeCniRequest, decodeCniResponse, encodeCniRequest, encodeCniResponse } from './cni-wire';

describe('CNI shim wire format', () => {
  it('round-trips a request and a response', () => {
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_ARGS: 'A=1;B=x=y' };
    const d = decodeCniRequest(encodeCniRequest(env, '{"cniVersion":"1.0.0"}'));
    expect(d).toEqual({ ok: true, env, stdin: '{"cniVersion":"1.0.0"}' });
    expect(decodeCniResponse(encodeCniResponse(1, 'é'))).toEqual({ exitCode: 1, stdout: 'é' });
  });

  it('only CNI_* variables travel', () => {
    const d = decodeCniRequest(encodeCniRequest({ CNI_COMMAND: 'DEL', PATH: '/bin', HOME: '/root' }, ''));
    expect(d.ok && d.env).toEqual({ CNI_COMMAND: 'DEL' });
  });

  const good = encodeCniRequest({ CNI_COMMAND: 'ADD' }, 'x');
  it.each([
    ['empty', Buffer.alloc(0), /not a tern CNI request/],
    ['wrong magic', Buffer.from('HTTP/1.1 200'), /not a tern CNI request/],
    ['truncated', good.subarray(0, good.length - 1), /truncated/],
    ['trailing bytes', Buffer.concat([good, Buffer.from('z')]), /trailing/],
    ['too many env entries', Buffer.concat([Buffer.from('TCNI'), Buffer.from([0xff, 0xff, 0, 0])]), /too many/],
    ['oversized', Buffer.alloc(MAX_REQUEST + 100_000), /exceeds/],
  ])('rejects %s', (_n, buf, msg) => {
    const d = decodeCniRequest(buf);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(msg);
  });

  it('rejects an env entry that is not CNI_*', () => {
    const b = Buffer.concat([Buffer.from('TCNI'), Buffer.from([1, 0, 0, 0]), Buffer.from([6, 0, 0, 0]), Buffer.from('PATH=x'), Buffer.from([0, 0, 0, 0])]);
    const d = decodeCniRequest(b);
    expect(d.ok).toBe(false);
  });
});
