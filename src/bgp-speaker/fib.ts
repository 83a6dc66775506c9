/**
 * Kernel routes for the speaker's namespace: a thin rtnetlink adapter of its
 * own (the dataplane layer is not a dependency of the speaker). Every route
 * carries RTPROT_TERN; on start we mark the Tern routes already there and
 * sweep the ones not re-learned once the speaker has converged. Writes are
 * batched (hundreds of RTM_NEWROUTE messages per sendmsg, each acknowledged)
 * and pipelined (several batches in flight), on a raw socket with our own
 * encoding: the generic request path of the netlink package costs ~0.3 ms a route.
 */
import { createRtNetlink, RawNetlinkSocket, type RtNetlinkSocket } from 'netlink';
import { RTPROT_TERN } from '../lib/constants';
import { TernError, errnoOf, messageOf } from '../lib/errors';
import type { Logger } from '../lib/log';
import { addrToBytes, parsePrefix, v4ToString, v6ToString } from './codec';
import type { FibChange } from './rib';
import type { FibFailure, FibSink } from './speaker';

const AF_INET = 2;
const RESOLVE_TTL_MS = 5_000;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const RTA_GATEWAY = 5;
const ENOENT = 2;
const ESRCH = 3;

export interface KernelRoute {
  prefix: string;
  gateways: string[];
}

export class KernelFib implements FibSink {
  private readonly sock: RtNetlinkSocket;
  private readonly writer: RouteWriter;
  /** Tern routes found at start and not (yet) re-installed. */
  private marked = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly opts: { table?: number; batch?: number; window?: number } = {},
  ) {
    this.sock = createRtNetlink();
    this.writer = new RouteWriter(opts.batch ?? 512, opts.window ?? 8);
  }

  /** Mark: remember the Tern-owned routes that exist now. */
  async start(): Promise<number> {
    const routes = await this.list();
    this.marked = new Set(routes.map((r) => r.prefix));
    return this.marked.size;
  }

  async list(): Promise<KernelRoute[]> {
    const out: KernelRoute[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      const msgs = await this.sock.getRoutes({ family });
      for (const m of msgs) {
        const protocol = Number(m.data.protocol as unknown); // unknown protocols come back as numbers
        const table = m.attrs.table ?? m.data.table;
        if (protocol !== RTPROT_TERN || table !== (this.opts.table ?? RT_TABLE_MAIN)) continue;
        const fmt = family === AF_INET ? v4ToString : v6ToString;
        const dst = m.attrs.dst ? fmt(m.attrs.dst, 0) : family === AF_INET ? '0.0.0.0' : '::';
        const gateways = m.attrs.gateway ? [fmt(m.attrs.gateway, 0)] : m.attrs.multipath ? decodeGateways(m.attrs.multipath, fmt) : [];
        // BGP routes always have next hops; Tern's other proto-84 routes (pod host routes, block blackholes) have none and are not ours to sweep.
        if (!gateways.length) continue;
        out.push({ prefix: `${dst}/${m.data.dstLen ?? 0}`, gateways });
      }
    }
    return out;
  }

  async apply(changes: FibChange[]): Promise<FibFailure[]> {
    for (const c of changes) this.marked.delete(c.prefix);
    return this.writer.write(await this.resolve(changes), this.opts.table ?? RT_TABLE_MAIN);
  }

  /** Next hop -> the gateway the kernel reaches it through (undefined: directly connected), with when it was asked. */
  private readonly via = new Map<string, { gateway?: string; at: number }>();

  /**
   * Recursive next hops (multihop eBGP, iBGP from a route reflector with
   * next-hop-self elsewhere): a next hop that is not directly connected is
   * replaced by the gateway the kernel uses to reach it, one level deep, as
   * BIRD's `gateway recursive` does. Answers are cached for a few seconds, so
   * a 100k-route burst costs one lookup per distinct next hop.
   */
  private async resolve(changes: FibChange[]): Promise<FibChange[]> {
    const now = Date.now();
    const hops = new Set<string>();
    for (const c of changes) for (const h of c.nextHops) hops.add(h);
    for (const h of hops) {
      const cached = this.via.get(h);
      if (cached && now - cached.at < RESOLVE_TTL_MS) continue;
      this.via.set(h, { gateway: await this.routeGet(h), at: now });
    }
    const map = (h: string) => this.via.get(h)?.gateway ?? h;
    return changes.map((c) => (c.nextHops.some((h) => map(h) !== h) ? { ...c, nextHops: [...new Set(c.nextHops.map(map))] } : c));
  }

  /**
   * Next hops whose gateway in the underlay changed since they were resolved
   * (a link or an IGP route moved): the routes using them must be written again.
   */
  async movedNextHops(): Promise<string[]> {
    const moved: string[] = [];
    for (const [h, v] of this.via) {
      const gateway = await this.routeGet(h);
      if (gateway !== v.gateway) moved.push(h);
      this.via.set(h, { gateway, at: Date.now() });
    }
    return moved;
  }

  /** The kernel's own answer for one destination (`ip route get`): its gateway, if it has one. */
  private async routeGet(addr: string): Promise<string | undefined> {
    const v6 = addr.includes(':');
    try {
      const [m] = await this.sock.getRoute({ family: v6 ? AF_INET6 : AF_INET, dstLen: v6 ? 128 : 32 }, { dst: Buffer.from(addrToBytes(addr)) });
      const gw = m?.attrs.gateway;
      return gw ? (v6 ? v6ToString : v4ToString)(gw, 0) : undefined;
    } catch {
      return undefined; // unreachable now: install as learned, and the kernel says why
    }
  }

  /** Sweep: remove marked routes that were not installed again. */
  async converged(): Promise<void> {
    const stale = [...this.marked];
    this.marked.clear();
    if (stale.length) this.log.info({ routes: stale.length }, 'sweeping stale kernel routes');
    await this.apply(stale.map((prefix) => ({ family: 0, prefix, nextHops: [] })));
  }

  close(): void {
    this.sock.socket.close();
    this.writer.close();
  }

}

function decodeGateways(b: Buffer, fmt: (b: Uint8Array, off: number) => string): string[] {
  const out: string[] = [];
  let off = 0;
  while (off + 8 <= b.length) {
    const len = b.readUInt16LE(off);
    if (len < 8) break;
    for (let a = off + 8; a + 4 <= off + len; ) {
      const alen = b.readUInt16LE(a);
      if (alen < 4) break;
      if (b.readUInt16LE(a + 2) === RTA_GATEWAY) out.push(fmt(b, a + 4));
      a += (alen + 3) & ~3;
    }
    off += (len + 3) & ~3;
  }
  return out;
}

const NLMSG_ERROR = 2;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;
const RTA_DST = 1;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const NETLINK_ROUTE = 0;

/** Upper bound of one route message's size, so that a batch is encoded into one buffer. */
function routeMessageBound(c: FibChange): number {
  const addr = c.prefix.includes(':') ? 16 : 4;
  const hops = c.nextHops.length;
  // nlmsghdr + rtmsg, RTA_DST, RTA_TABLE, then RTA_GATEWAY or RTA_MULTIPATH of rtnexthop + RTA_GATEWAY each
  return 28 + (4 + addr) + 8 + (hops <= 1 ? 4 + addr : 4 + hops * (8 + 4 + 16));
}

function putAttrHeader(b: Buffer, off: number, type: number, payloadLen: number): number {
  b.writeUInt16LE(4 + payloadLen, off);
  b.writeUInt16LE(type, off + 2);
  return off + 4;
}

/**
 * One RTM_NEWROUTE/RTM_DELROUTE message (nlmsghdr + rtmsg + attributes),
 * written at `off` in `b`; returns the offset after it (attributes are
 * 4-aligned: address payloads are 4 or 16 octets). `gw` turns a next hop into
 * its address octets (the writer caches them: a table has few next hops).
 */
export function writeRouteMessage(b: Buffer, off: number, c: FibChange, seq: number, table: number, ack: boolean, gw: (addr: string) => Buffer = addrToBytes): number {
  const p = parsePrefix(c.prefix);
  const addrLen = p.v6 ? 16 : 4;
  const del = c.nextHops.length === 0;
  const start = off;
  b.fill(0, off, off + 28);
  b.writeUInt16LE(del ? RTM_DELROUTE : RTM_NEWROUTE, off + 4);
  b.writeUInt16LE(NLM_F_REQUEST | (ack ? NLM_F_ACK : 0) | (del ? 0 : NLM_F_CREATE | NLM_F_REPLACE), off + 6);
  b.writeUInt32LE(seq, off + 8);
  b[off + 16] = p.v6 ? AF_INET6 : AF_INET;
  b[off + 17] = p.len;
  b[off + 20] = table > 255 ? 252 : table; // RT_TABLE_COMPAT when the real id is in RTA_TABLE
  b[off + 21] = RTPROT_TERN;
  b[off + 22] = 0; // RT_SCOPE_UNIVERSE
  b[off + 23] = 1; // RTN_UNICAST
  off += 28;
  if (p.len > 0) {
    off = putAttrHeader(b, off, RTA_DST, addrLen);
    off += p.bytes.copy(b, off, 0, addrLen);
  }
  if (c.nextHops.length === 1) {
    const a = gw(c.nextHops[0]);
    off = putAttrHeader(b, off, RTA_GATEWAY, a.length);
    off += a.copy(b, off);
  } else if (!del) {
    const mpStart = off;
    off += 4;
    for (const h of c.nextHops) {
      const a = gw(h);
      b.fill(0, off, off + 8);
      b.writeUInt16LE(8 + 4 + a.length, off); // rtnh_len
      off = putAttrHeader(b, off + 8, RTA_GATEWAY, a.length);
      off += a.copy(b, off);
    }
    putAttrHeader(b, mpStart, RTA_MULTIPATH, off - mpStart - 4);
  }
  if (table > 255) {
    off = putAttrHeader(b, off, RTA_TABLE, 4);
    off = b.writeUInt32LE(table, off);
  }
  b.writeUInt32LE(off - start, start);
  return off;
}

/** One route message on its own (tests, and anything not batching). */
export function encodeRouteMessage(c: FibChange, seq: number, table: number, ack = true): Buffer {
  const b = Buffer.alloc(routeMessageBound(c));
  return b.subarray(0, writeRouteMessage(b, 0, c, seq, table, ack));
}

interface Batch {
  changes: FibChange[];
  firstSeq: number;
  failures: FibFailure[];
  done: () => void;
}

/**
 * Batched, pipelined route writes. Only the last message of a batch asks for
 * an ACK: the kernel answers every failed message with an error anyway, in
 * order, so the last ACK means the whole batch is done.
 */
class RouteWriter {
  private readonly raw: RawNetlinkSocket;
  private seq = 1;
  private readonly inFlight = new Map<number, Batch>();
  private readonly gateways = new Map<string, Buffer>();
  private readonly gateway = (addr: string): Buffer => {
    let b = this.gateways.get(addr);
    if (!b) {
      if (this.gateways.size >= 4096) this.gateways.clear(); // next hops are peers: few, but never unbounded
      this.gateways.set(addr, (b = addrToBytes(addr)));
    }
    return b;
  };

  constructor(
    private readonly batchSize: number,
    private readonly window: number,
  ) {
    // Replies are peeked for their size: without peeking every reply, mostly a 36-octet
    // ACK, got a zeroed buffer of the full receive size (64 KiB) held until the next GC.
    this.raw = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 8 << 20, sendBufferSize: 8 << 20, messagePeeking: true });
    this.raw.on('message', (b) => this.receive(b));
  }

  close(): void {
    this.raw.close();
  }

  async write(changes: FibChange[], table: number): Promise<FibFailure[]> {
    const failures: FibFailure[] = [];
    const running = new Set<Promise<void>>();
    for (let i = 0; i < changes.length; i += this.batchSize) {
      while (running.size >= this.window) await Promise.race(running);
      const p = this.send(changes.slice(i, i + this.batchSize), table, failures);
      running.add(p);
      void p.finally(() => running.delete(p));
    }
    await Promise.all(running);
    return failures;
  }

  private send(changes: FibChange[], table: number, failures: FibFailure[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const firstSeq = this.seq;
      this.seq += changes.length;
      const last = firstSeq + changes.length - 1;
      const batch: Batch = { changes, firstSeq, failures, done: resolve };
      this.inFlight.set(last, batch);
      // The whole batch is written into one buffer: no per-route buffers to allocate and collect.
      let size = 0;
      for (const c of changes) size += routeMessageBound(c);
      const b = Buffer.allocUnsafe(size);
      let off = 0;
      for (let i = 0; i < changes.length; i++) off = writeRouteMessage(b, off, changes[i], firstSeq + i, table, firstSeq + i === last, this.gateway);
      this.raw.send(b.subarray(0, off), {}, (err) => {
        if (!err) return;
        this.inFlight.delete(last);
        reject(err);
      });
    });
  }

  /** The in-flight batch a sequence number belongs to (batches are keyed by their last sequence number). */
  private batchOf(seq: number): Batch | undefined {
    for (const [last, b] of this.inFlight) if (seq >= b.firstSeq && seq <= last) return b;
    return undefined;
  }

  private receive(b: Buffer): void {
    let off = 0;
    while (off + 16 <= b.length) {
      const len = b.readUInt32LE(off);
      if (len < 16) break;
      if (b.readUInt16LE(off + 4) === NLMSG_ERROR && len >= 20) {
        const seq = b.readUInt32LE(off + 8);
        const err = -b.readInt32LE(off + 16);
        const batch = this.batchOf(seq);
        if (batch) {
          const c = batch.changes[seq - batch.firstSeq];
          // Removing a route that is already gone is fine.
          if (err !== 0 && !(c.nextHops.length === 0 && (err === ENOENT || err === ESRCH))) batch.failures.push({ prefix: c.prefix, errno: err });
          if (seq === batch.firstSeq + batch.changes.length - 1) {
            this.inFlight.delete(seq);
            batch.done();
          }
        }
      }
      off += (len + 3) & ~3;
    }
  }
}
