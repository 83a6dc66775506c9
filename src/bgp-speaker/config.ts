/** Standalone speaker configuration (YAML or JSON), validated once at the edge. */
import * as fs from 'node:fs';
import YAML from 'yaml';
import { TernError } from '../lib/errors';
import { IPV4_UNICAST, IPV6_UNICAST, canonicalPrefix, addrToBytes } from './codec';
import { parsePrefixRule } from './rib';

export interface PeerSpec {
  address: string;
  asn: number;
  port?: number;
  passive?: boolean;
  holdTime?: number;
  connectRetryTime?: number;
  gracefulRestart?: boolean;
  routeReflectorClient?: boolean;
  nextHopSelf?: boolean;
  localAddress?: string;
  /** Our next hop towards this peer per family, when the session's own address does not fit (e.g. IPv6 over an IPv4 session). */
  nextHop?: { v4?: string; v6?: string };
  /** "10.0.0.0/16" or "10.0.0.0/16 le 26": import only inside these. */
  importPrefixes?: string[];
  exportPrefixes?: string[];
  maxPrefix?: number;
  /** TCP MD5 signature (RFC 2385) on the session's connections, as BIRD's `password` and GoBGP's `auth-password`. */
  password?: string;
  /** TTL to send with (BIRD `multihop N`); eBGP defaults to 1 (directly connected). */
  multihop?: number;
  /** GTSM (RFC 5082): send TTL 255, accept only packets from at most this many hops away (true: 1). */
  ttlSecurity?: boolean | number;
  /** Towards an eBGP peer, keep the next hop of routes we pass on instead of putting ours (our own routes still carry ours). */
  keepNextHop?: boolean;
  /** BFD (RFC 5880/5881, single hop) in milliseconds; the BGP session goes down with it. */
  bfd?: { minRx: number; minTx: number; multiplier: number };
}

export interface SpeakerConfig {
  asn: number;
  routerId: string;
  listen?: { address?: string; port?: number } | false;
  peers: PeerSpec[];
  families?: ('ipv4' | 'ipv6')[];
  /** Prefixes to originate at start. */
  routes?: string[];
  holdTime?: number;
  connectRetryTime?: number;
  idleHoldTime?: number;
  gracefulRestart?: { restartTime: number };
  clusterId?: string;
  maxPaths?: number;
  installIntoKernel?: boolean;
}

function fail(field: string, msg: string): never {
  throw new TernError('INVALID_CONFIG', `bgp config: ${field}: ${msg}`);
}
const isInt = (v: unknown, min: number, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
function checkAddr(field: string, v: unknown): void {
  if (typeof v !== 'string') fail(field, 'must be an IP address');
  try {
    addrToBytes(v);
  } catch {
    fail(field, `not an IP address: ${v}`);
  }
}

export function validateConfig(raw: unknown): SpeakerConfig {
  if (!raw || typeof raw !== 'object') fail('(root)', 'must be a mapping');
  const c = raw as Record<string, unknown>;
  if (!isInt(c.asn, 1, 0xffffffff)) fail('asn', 'must be an integer 1..4294967295');
  checkAddr('routerId', c.routerId);
  if ((c.routerId as string).includes(':')) fail('routerId', 'must be an IPv4 address');
  if (!Array.isArray(c.peers)) fail('peers', 'must be a list');
  for (const h of ['holdTime', 'connectRetryTime', 'idleHoldTime'] as const) if (c[h] !== undefined && !isInt(c[h], 0, 65535)) fail(h, 'must be 0..65535');
  if (c.holdTime !== undefined && (c.holdTime === 1 || c.holdTime === 2)) fail('holdTime', 'must be 0 or at least 3 (RFC 4271 §4.2)');
  (c.peers as unknown[]).forEach((p, i) => {
    const f = `peers[${i}]`;
    if (!p || typeof p !== 'object') fail(f, 'must be a mapping');
    const q = p as Record<string, unknown>;
    checkAddr(`${f}.address`, q.address);
    if (!isInt(q.asn, 1, 0xffffffff)) fail(`${f}.asn`, 'must be an integer');
    if (q.holdTime !== undefined && (!isInt(q.holdTime, 0, 65535) || q.holdTime === 1 || q.holdTime === 2)) fail(`${f}.holdTime`, 'must be 0 or 3..65535');
    for (const k of ['importPrefixes', 'exportPrefixes'] as const) {
      if (q[k] === undefined) continue;
      if (!Array.isArray(q[k])) fail(`${f}.${k}`, 'must be a list');
      for (const r of q[k] as unknown[]) {
        try {
          parsePrefixRule(String(r));
        } catch {
          fail(`${f}.${k}`, `bad prefix rule: ${String(r)}`);
        }
      }
    }
    if (q.localAddress !== undefined) checkAddr(`${f}.localAddress`, q.localAddress);
    // Linux keeps at most 80 key bytes (TCP_MD5SIG_MAXKEYLEN).
    if (q.password !== undefined && (typeof q.password !== 'string' || !q.password || Buffer.byteLength(q.password) > 80)) fail(`${f}.password`, 'must be a string of 1 to 80 bytes');
    if (q.multihop !== undefined && !isInt(q.multihop, 1, 255)) fail(`${f}.multihop`, 'must be a TTL from 1 to 255');
    if (q.ttlSecurity !== undefined && typeof q.ttlSecurity !== 'boolean' && !isInt(q.ttlSecurity, 1, 254)) fail(`${f}.ttlSecurity`, 'must be true or a hop count from 1 to 254');
    if (q.ttlSecurity && q.multihop !== undefined) fail(`${f}.ttlSecurity`, 'cannot be combined with multihop (GTSM always sends TTL 255)');
    if (q.bfd !== undefined) {
      const b = q.bfd as Record<string, unknown>;
      if (typeof b !== 'object' || b === null) fail(`${f}.bfd`, 'must be {minRx, minTx, multiplier}');
      for (const k of ['minRx', 'minTx'] as const) if (!isInt(b[k], 10, 60_000)) fail(`${f}.bfd.${k}`, 'must be milliseconds from 10 to 60000');
      if (!isInt(b.multiplier, 1, 255)) fail(`${f}.bfd.multiplier`, 'must be from 1 to 255');
      if (q.multihop !== undefined && (q.multihop as number) > 1) fail(`${f}.bfd`, 'only single-hop BFD is implemented (RFC 5881)');
    }
  });
  if (c.families !== undefined && (!Array.isArray(c.families) || c.families.some((x) => x !== 'ipv4' && x !== 'ipv6'))) fail('families', "must list 'ipv4' and/or 'ipv6'");
  if (c.routes !== undefined) {
    if (!Array.isArray(c.routes)) fail('routes', 'must be a list of prefixes');
    c.routes = (c.routes as unknown[]).map((r) => {
      try {
        return canonicalPrefix(String(r));
      } catch {
        return fail('routes', `bad prefix: ${String(r)}`);
      }
    });
  }
  return c as unknown as SpeakerConfig;
}

export function loadConfig(file: string): SpeakerConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `cannot read ${file}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `${file}: ${(e as Error).message}`, { cause: e });
  }
  return validateConfig(raw);
}

export function familiesOf(c: SpeakerConfig): number[] {
  const f = c.families ?? ['ipv4', 'ipv6'];
  return f.map((x) => (x === 'ipv4' ? IPV4_UNICAST : IPV6_UNICAST));
}
