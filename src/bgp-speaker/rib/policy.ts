/** Prefix rules for import and export (RFC 8212 default for eBGP). */
import { parsePrefix, maskBytes, v4KeyLength } from '../codec';
import type { PrefixRule } from './types';

interface Compiled {
  v6: boolean;
  len: number;
  maxLength: number;
  bytes: Buffer;
  /** IPv4 rules: the rule's prefix as a v4PrefixKey. */
  key: number;
}

/** A compiled prefix list: does a route fall inside one of the rules? */
export class PrefixFilter {
  private readonly rules: Compiled[];
  constructor(rules: readonly PrefixRule[]) {
    this.rules = rules.map((r) => {
      const p = parsePrefix(r.prefix);
      maskBytes(p.bytes, p.len);
      const key = p.v6 ? 0 : 2 ** p.len + Math.floor(p.bytes.readUInt32BE(0) / 2 ** (32 - p.len));
      return { v6: p.v6, len: p.len, maxLength: r.maxLength ?? (p.v6 ? 128 : 32), bytes: p.bytes, key };
    });
  }

  /** `matches` for a RIB key: an IPv4 prefix as a v4PrefixKey (no parsing, no allocation), anything else as text. */
  matchesKey(key: number | string): boolean {
    if (typeof key === 'string') return this.matches(key);
    const len = v4KeyLength(key);
    for (const r of this.rules) {
      // The key's ancestor at the rule's length is the rule's key when the prefix lies inside it.
      if (!r.v6 && len >= r.len && len <= r.maxLength && Math.floor(key / 2 ** (len - r.len)) === r.key) return true;
    }
    return false;
  }
  matches(prefix: string): boolean {
    let p;
    try {
      p = parsePrefix(prefix);
    } catch {
      return false;
    }
    for (const r of this.rules) {
      if (r.v6 !== p.v6 || p.len < r.len || p.len > r.maxLength) continue;
      const full = r.len >> 3;
      let ok = true;
      for (let i = 0; i < full && ok; i++) ok = p.bytes[i] === r.bytes[i];
      const rem = r.len & 7;
      if (ok && rem) ok = (p.bytes[full] & ((0xff << (8 - rem)) & 0xff)) === r.bytes[full];
      if (ok) return true;
    }
    return false;
  }
}

/** Parse "10.0.0.0/16" or "10.0.0.0/16 le 26" (config text). */
export function parsePrefixRule(text: string): PrefixRule {
  const m = /^\s*(\S+)(?:\s+le\s+(\d+))?\s*$/.exec(text);
  if (!m) throw new TypeError(`bad prefix rule: ${text}`);
  parsePrefix(m[1]);
  return m[2] ? { prefix: m[1], maxLength: Number(m[2]) } : { prefix: m[1] };
}
