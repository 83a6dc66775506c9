/**
 * Kernel routes for the speaker's namespace. Every route carries RTPROT_BGP,
 * the speaker's own mark; on start we mark the routes already there and sweep
 * the ones not re-learned once the speaker has converged. Writes go through
 * the dataplane's batched, pipelined route writer.
 */
import { RTPROT_BGP, RTPROT_LEGACY } from '../lib/constants';
import { TernError } from '../lib/errors';
import type { Logger } from '../lib/log';
import { Rtnl } from '../dataplane/rtnl';
import { RouteWriter, type RouteWrite } from '../dataplane/route-writer';
import { RT_SCOPE, RT_TABLE_MAIN, RTN } from '../dataplane/route-codec';
import { addrToBytes, parsePrefix } from './codec';
import type { FibChange } from './rib';
import type { FibFailure, FibSink } from './speaker';

const RESOLVE_TTL_MS = 5_000;

export interface KernelRoute {
  prefix: string;
  gateways: string[];
  /** The mark it carries: RTPROT_BGP, or RTPROT_LEGACY for a route a version before per-owner marks left. */
  protocol: number;
}

export class KernelFib implements FibSink {
  private readonly rtnl: Rtnl;
  private readonly writer: RouteWriter;
  /** Our routes found at start and not (yet) re-installed, with the mark each carries. */
  private marked = new Map<string, number>();
  /** Next hop octets: a table has few next hops. */
  private readonly gateways = new Map<string, Buffer>();

  constructor(
    private readonly log: Logger,
    private readonly opts: { table?: number; batch?: number; window?: number } = {},
  ) {
    this.rtnl = Rtnl.open();
    this.writer = new RouteWriter(opts.batch ?? 512, opts.window ?? 8);
  }

  /** Mark: remember the Tern-owned routes that exist now. */
  async start(): Promise<number> {
    const routes = await this.list();
    this.marked = new Map(routes.map((r) => [r.prefix, r.protocol]));
    return this.marked.size;
  }

  /**
   * Our routes: those with our mark, and those a version before per-owner
   * marks left with the shared one and a next hop (its pod routes and block
   * blackholes have none). Re-installing one rewrites its mark in place.
   */
  async list(): Promise<KernelRoute[]> {
    const table = this.opts.table ?? RT_TABLE_MAIN;
    const out: KernelRoute[] = [];
    for (const r of await this.rtnl.listRoutes({ table })) {
      if (r.protocol !== RTPROT_BGP && r.protocol !== RTPROT_LEGACY) continue;
      const gateways = r.gateway ? [r.gateway] : (r.multipath ?? []).map((h) => h.gateway);
      if (r.protocol === RTPROT_LEGACY && !gateways.length) continue;
      out.push({ prefix: r.dst, gateways, protocol: r.protocol });
    }
    return out;
  }

  /** Returns the routes the kernel refused (the speaker keeps them out of the RIB's installed set and retries). */
  async apply(changes: FibChange[]): Promise<FibFailure[]> {
    const table = this.opts.table ?? RT_TABLE_MAIN;
    await this.resolveHops(changes);
    // Wire routes are built as the writer takes them, a batch at a time: a 100k-route
    // burst then never holds 100k route objects and destination buffers at once.
    const marked = this.marked;
    const self = this;
    function* writes(): Generator<RouteWrite> {
      for (const raw of changes) {
        const c = self.resolved(raw);
        // A route still carrying the old shared mark is deleted by that mark; an install replaces it in place.
        const protocol = c.nextHops.length === 0 ? (marked.get(c.prefix) ?? RTPROT_BGP) : RTPROT_BGP;
        marked.delete(c.prefix);
        yield { route: self.wire(c, protocol, table), del: c.nextHops.length === 0, label: c.prefix };
      }
    }
    return (await this.writer.write(writes())).map((f) => ({ prefix: f.label, errno: f.errno }));
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
  private async resolveHops(changes: FibChange[]): Promise<void> {
    const now = Date.now();
    const hops = new Set<string>();
    for (const c of changes) for (const h of c.nextHops) hops.add(h);
    for (const h of hops) {
      const cached = this.via.get(h);
      if (cached && now - cached.at < RESOLVE_TTL_MS) continue;
      this.via.set(h, { gateway: await this.routeGet(h), at: now });
    }
  }

  /** One change with its next hops resolved (after resolveHops); the change itself when none moved. */
  private resolved(c: FibChange): FibChange {
    let moved = false;
    for (const h of c.nextHops) if ((this.via.get(h)?.gateway ?? h) !== h) moved = true;
    if (!moved) return c;
    const map = (h: string) => this.via.get(h)?.gateway ?? h;
    return { ...c, nextHops: [...new Set(c.nextHops.map(map))] };
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

  /** The kernel's own answer for one destination (`ip route get`); unreachable now: install as learned, and the kernel says why. */
  private routeGet(addr: string): Promise<string | undefined> {
    return this.rtnl.routeGet(addr);
  }

  private wire(c: FibChange, protocol: number, table: number) {
    const p = parsePrefix(c.prefix);
    const gw = (h: string) => ({ gateway: this.gateway(h) });
    return {
      v6: p.v6,
      dst: p.bytes,
      dstLen: p.len,
      ...(c.nextHops.length === 1 ? { gateway: this.gateway(c.nextHops[0]) } : c.nextHops.length > 1 ? { hops: c.nextHops.map(gw) } : {}),
      protocol,
      table,
      scope: RT_SCOPE.universe,
      type: RTN.unicast,
    };
  }

  private gateway(addr: string): Buffer {
    let b = this.gateways.get(addr);
    if (!b) {
      if (this.gateways.size >= 4096) this.gateways.clear(); // next hops are peers: few, but never unbounded
      this.gateways.set(addr, (b = addrToBytes(addr)));
    }
    return b;
  }

  /** Sweep: remove marked routes that were not installed again. */
  async converged(): Promise<void> {
    const stale = [...this.marked.keys()];
    if (stale.length) this.log.info({ routes: stale.length }, 'sweeping stale kernel routes');
    await this.apply(stale.map((prefix) => ({ family: 0, prefix, nextHops: [] })));
  }

  close(): void {
    this.rtnl.close();
    this.writer.close();
  }

}
