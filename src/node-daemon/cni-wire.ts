/**
 * Framing between the native `tern` shim and the daemon (see native/cni-shim.c).
 * All integers are u32 little-endian.
 *   request:  "TCNI" nenv { len "KEY=VALUE" }*nenv len stdin
 *   response: exitCode len stdout
 */
export const MAGIC = 'TCNI';
export const MAX_REQUEST = 1 << 20;
const MAX_ENV = 64;

export type DecodedRequest = { ok: true; env: Record<string, string>; stdin: string } | { ok: false; error: string };

export function decodeCniRequest(b: Buffer): DecodedRequest {
  if (b.length > MAX_REQUEST + 64 * 1024) return { ok: false, error: `request of ${b.length} bytes exceeds ${MAX_REQUEST}` };
  if (b.length < 8 || b.toString('latin1', 0, 4) !== MAGIC) return { ok: false, error: 'not a tern CNI request' };
  let off = 4;
  const need = (n: number): boolean => off + n <= b.length;
  const nenv = b.readUInt32LE(off);
  off += 4;
  if (nenv > MAX_ENV) return { ok: false, error: `too many environment variables (${nenv})` };
  const env: Record<string, string> = {};
  for (let i = 0; i < nenv; i++) {
    if (!need(4)) return { ok: false, error: 'truncated request' };
    const len = b.readUInt32LE(off);
    off += 4;
    if (!need(len)) return { ok: false, error: 'truncated request' };
    const kv = b.toString('utf8', off, off + len);
    off += len;
    const eq = kv.indexOf('=');
    if (eq <= 0 || !kv.startsWith('CNI_')) return { ok: false, error: `bad environment entry "${kv.slice(0, 40)}"` };
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (!need(4)) return { ok: false, error: 'truncated request' };
  const slen = b.readUInt32LE(off);
  off += 4;
  if (slen > MAX_REQUEST) return { ok: false, error: `stdin of ${slen} bytes exceeds ${MAX_REQUEST}` };
  if (off + slen !== b.length) return { ok: false, error: 'truncated or trailing bytes in request' };
  return { ok: true, env, stdin: b.toString('utf8', off, off + slen) };
}

export function encodeCniRequest(env: Record<string, string>, stdin: string): Buffer {
  const parts: Buffer[] = [Buffer.from(MAGIC, 'latin1')];
  const u32 = (n: number): Buffer => {
    const x = Buffer.alloc(4);
    x.writeUInt32LE(n);
    return x;
  };
  const entries = Object.entries(env).filter(([k]) => k.startsWith('CNI_'));
  parts.push(u32(entries.length));
  for (const [k, v] of entries) {
    const kv = Buffer.from(`${k}=${v}`);
    parts.push(u32(kv.length), kv);
  }
  const s = Buffer.from(stdin);
  parts.push(u32(s.length), s);
  return Buffer.concat(parts);
}

export function encodeCniResponse(exitCode: number, stdout: string): Buffer {
  const body = Buffer.from(stdout);
  const h = Buffer.alloc(8);
  h.writeUInt32LE(exitCode >>> 0, 0);
  h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body]);
}

export function decodeCniResponse(b: Buffer): { exitCode: number; stdout: string } | undefined {
  if (b.length < 8) return undefined;
  const len = b.readUInt32LE(4);
  if (b.length !== 8 + len) return undefined;
  return { exitCode: b.readUInt32LE(0), stdout: b.toString('utf8', 8) };
}
