/**
 * Kernel routes for the speaker's namespace: a thin rtnetlink adapter of its
 * own (the dataplane layer is not a dependency of the speaker). Every route
 * carries RTPROT_TERN; on start we mark the Tern routes already there and
 * sweep the ones not re-learned once the speaker has converged. Writes are
 * pipelined: many requests in flight on one socket.
 */
import { createRtNetlink, FlagsNew, type RtNetlinkSocket } from 'netlink';
import type * as rts from 'netlink/dist/rt/gen_structs';
import { RTPROT_TERN } from '../lib/constants';
import { TernError, errnoOf, messageOf } from '../lib/errors';
import type { Logger } from '../lib/log';
import { addrToBytes, parsePrefix, v4ToString, v6ToString } from './codec';
import type { FibChange } from './rib';
import type { FibSink } from './speaker';

const AF_INET = 2;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const RTA_GATEWAY = 5;
const ENOENT = 2;
const ESRCH = 3;

/** RTA_MULTIPATH payload: one rtnexthop plus RTA_GATEWAY per hop. */
export function encodeMultipath(gateways: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const gw of gateways) {
    const addr = addrToBytes(gw);
    const attrLen = 4 + addr.length;
    const hop = Buffer.alloc(8 + ((attrLen + 3) & ~3));
    hop.writeUInt16LE(8 + attrLen, 0); // rtnh_len
    hop.writeUInt16LE(attrLen, 8);
    hop.writeUInt16LE(RTA_GATEWAY, 10);
    addr.copy(hop, 12);
    parts.push(hop);
  }
  return Buffer.concat(parts);
}

export interface KernelRoute {
  prefix: string;
  gateways: string[];
}

export class KernelFib implements FibSink {
  private readonly sock: RtNetlinkSocket;
  /** Tern routes found at start and not (yet) re-installed. */
  private marked = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly opts: { table?: number; concurrency?: number } = {},
  ) {
    this.sock = createRtNetlink();
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
        out.push({ prefix: `${dst}/${m.data.dstLen ?? 0}`, gateways });
      }
    }
    return out;
  }

  async apply(changes: FibChange[]): Promise<void> {
    const limit = this.opts.concurrency ?? 256;
    const failures: string[] = [];
    let i = 0;
    const worker = async () => {
      while (i < changes.length) {
        const c = changes[i++];
        try {
          await this.write(c);
        } catch (e) {
          failures.push(`${c.prefix}: ${messageOf(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, changes.length) }, worker));
    if (failures.length) throw new TernError('IO_FAILURE', `${failures.length} kernel route writes failed, first: ${failures[0]}`);
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
  }

  private message(prefix: string): { data: rts.Route; attrs: rts.RouteAttrs } {
    const p = parsePrefix(prefix);
    const table = this.opts.table ?? RT_TABLE_MAIN;
    const attrs: rts.RouteAttrs = {};
    if (p.len > 0) attrs.dst = p.bytes;
    if (table > 255) attrs.table = table;
    const data: rts.Route = {
      family: p.v6 ? AF_INET6 : AF_INET,
      dstLen: p.len,
      table: table > 255 ? 252 : table,
      protocol: RTPROT_TERN as never,
      scope: 0 as never,
      type: 1 as never,
    };
    return { data, attrs };
  }

  private async write(c: FibChange): Promise<void> {
    const { data, attrs } = this.message(c.prefix);
    this.marked.delete(c.prefix);
    if (c.nextHops.length === 0) {
      try {
        await this.sock.delRoute(data, attrs);
      } catch (e) {
        const n = errnoOf(e);
        if (n !== ENOENT && n !== ESRCH) throw e;
      }
      return;
    }
    if (c.nextHops.length === 1) attrs.gateway = addrToBytes(c.nextHops[0]);
    else attrs.multipath = encodeMultipath(c.nextHops);
    await this.sock.newRoute(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.REPLACE });
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
