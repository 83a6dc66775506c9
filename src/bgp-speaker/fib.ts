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
import { RT_SCOPE, RT_TABLE_MAIN, RTN, type WireRoute } from '../dataplane/route-codec';
import { addrToBytes, parsePrefix, v4KeyOctets } from './codec';
import { fibKey, fibPrefix, newFibBatch, type FibBatch } from './rib';
import type { FibFailure, FibSink } from './speaker';

const RESOLVE_TTL_MS = 5_000;
const NO_HOPS: readonly string[] = Object.freeze([]);

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
  private marked = new Map<number | string, number>(); // by FibBatch key
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
    this.marked = new Map(routes.map((r) => [fibKey(r.prefix), r.protocol]));
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
  async apply(batch: FibBatch): Promise<FibFailure[]> {
    const table = this.opts.table ?? RT_TABLE_MAIN;
    await this.resolveHops(batch.nextHops);
    return (await this.writer.write(this.writes(batch, table, this.marked))).map((f) => ({ prefix: fibPrefix(f.label), errno: f.errno }));
  }

  /**
   * The batch's writes. The writer encodes each write as it takes it, so one write object is
   * filled in for every route: a 100k-route burst makes no wire route, buffer or prefix text per
   * route. `marked`: the start-up marks, which the routes written are taken out of (a rehearsal
   * passes its own empty map, so that the compiled code has met this path too).
   */
  private *writes(batch: FibBatch, table: number, marked: Map<number | string, number>): Generator<RouteWrite> {
    const w: RouteWrite = { route: this.wire, del: false, label: '' };
    const { keys, nextHops } = batch;
    let list: readonly string[] | undefined;
    let hops: readonly string[] = NO_HOPS;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (nextHops[i] !== list) hops = this.resolved((list = nextHops[i])); // routes of one UPDATE share their list
      const del = hops.length === 0;
      // A route still carrying the old shared mark is deleted by that mark; an install replaces it in place.
      const protocol = del ? (marked.get(key) ?? RTPROT_BGP) : RTPROT_BGP;
      if (marked.size) marked.delete(key);
      this.fill(key, hops, protocol, table);
      w.del = del;
      w.label = key;
      yield w;
    }
  }

  /**
   * Take a batch through apply()'s code, the route writer's encoding included, writing nothing
   * (the speaker's JIT warm-up): its next hops are looked up (a read), and they and their gateway
   * octets are forgotten after it, so every rehearsal meets a new next hop as the first real
   * batch does. The start-up marks stay.
   */
  async rehearse(batch: FibBatch): Promise<void> {
    const added: string[] = [];
    for (const l of batch.nextHops) for (const h of l) if (!this.via.has(h) && !added.includes(h)) added.push(h);
    try {
      await this.resolveHops(batch.nextHops); // new next hops, looked up as in the first real batch,
      await this.resolveHops(batch.nextHops); // then found cached as in every later one
      await this.writer.write(this.writes(batch, this.opts.table ?? RT_TABLE_MAIN, new Map()), { dryRun: true });
    } finally {
      for (const h of added) {
        this.via.delete(h);
        this.gateways.delete(h);
      }
    }
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
  private async resolveHops(lists: readonly (readonly string[])[]): Promise<void> {
    const now = Date.now();
    const hops = new Set<string>();
    let last: readonly string[] | undefined;
    for (const l of lists) {
      if (l === last) continue; // routes of one UPDATE share their list
      last = l;
      for (const h of l) hops.add(h);
    }
    for (const h of hops) {
      const cached = this.via.get(h);
      if (cached && now - cached.at < RESOLVE_TTL_MS) continue;
      this.via.set(h, { gateway: await this.routeGet(h), at: now });
    }
  }

  /** Next hops as resolved (after resolveHops); the list itself when none moved. */
  private resolved(hops: readonly string[]): readonly string[] {
    let moved = false;
    for (const h of hops) if ((this.via.get(h)?.gateway ?? h) !== h) moved = true;
    if (!moved) return hops;
    return [...new Set(hops.map((h) => this.via.get(h)?.gateway ?? h))];
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

  /** The one wire route fill() writes each route into (the writer encodes it before the next). */
  private readonly wire: WireRoute = { v6: false, dst: Buffer.alloc(16), dstLen: 0, gateway: undefined, hops: undefined, protocol: RTPROT_BGP, table: RT_TABLE_MAIN, scope: RT_SCOPE.universe, type: RTN.unicast };

  private fill(key: number | string, hops: readonly string[], protocol: number, table: number): void {
    const r = this.wire;
    if (typeof key === 'number') {
      r.v6 = false;
      r.dstLen = v4KeyOctets(key, r.dst);
    } else {
      const p = parsePrefix(key);
      r.v6 = p.v6;
      r.dstLen = p.len;
      p.bytes.copy(r.dst);
    }
    r.gateway = hops.length === 1 ? this.gateway(hops[0]) : undefined;
    r.hops = hops.length > 1 ? hops.map((h) => ({ gateway: this.gateway(h) })) : undefined;
    r.protocol = protocol;
    r.table = table;
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
    if (this.marked.size) this.log.info({ routes: this.marked.size }, 'sweeping stale kernel routes');
    // Made where every batch is made (newFibBatch): a list of another kind deoptimises writes().
    const batch = newFibBatch();
    for (const key of this.marked.keys()) {
      batch.keys.push(key);
      batch.nextHops.push(NO_HOPS);
    }
    await this.apply(batch);
  }

  close(): void {
    this.rtnl.close();
    this.writer.close();
  }

}
