/**
 * Adj-RIB-In per peer, the Loc-RIB, and Adj-RIB-Out per peer, pure and
 * synchronous. Inputs are peer events and decoded route changes; `flush()`
 * returns what the kernel and each peer must be told, computed once per
 * changed prefix.
 */
import { IPV4_UNICAST, IPV6_UNICAST, type FamilyChanges, type RouteAttrs, type Nlri } from '../codec';
import { selectBest } from './decision';
import { exportAttrs } from './export';
import { PrefixFilter } from './policy';
import { LOCAL_PEER_ID, type Destination, type FibChange, type LocalConfig, type Path, type RibPeer } from './types';

interface PeerState {
  cfg: RibPeer;
  configuredSelf: RibPeer['selfNextHop'];
  importFilter?: PrefixFilter;
  exportFilter?: PrefixFilter;
  up: boolean;
  routerId: string;
  families: Set<number>;
  /** Adj-RIB-In: prefix (or `${prefix}#${pathId}` with ADD-PATH) -> path. */
  adjIn: Map<string, Path>;
  /** Adj-RIB-Out: prefix -> attributes last sent. */
  adjOut: Map<string, RouteAttrs>;
  exportCache: WeakMap<RouteAttrs, RouteAttrs | null>;
  needsFullTable: boolean;
  filtered: number;
}

export interface ImportResult {
  accepted: number;
  withdrawn: number;
  filtered: number;
  /** Set when the peer went over its max-prefix limit: the session must send Cease/1. */
  maxPrefixExceeded?: boolean;
}

export interface PeerOut {
  /** Grouped by attribute set so the session packs many prefixes per UPDATE. */
  announce: { family: number; attrs: RouteAttrs; prefixes: string[] }[];
  withdraw: { family: number; prefixes: string[] }[];
}

export interface FlushResult {
  fib: FibChange[];
  out: Map<string, PeerOut>;
}

export interface PeerStats {
  received: number;
  accepted: number;
  filtered: number;
  sent: number;
}

const ALLOW_ALL = new PrefixFilter([{ prefix: '0.0.0.0/0' }, { prefix: '::/0' }]);
// Without ADD-PATH the key is the prefix itself: no second string per route.
const pathKey = (n: Nlri) => (n.pathId ? `${n.prefix}#${n.pathId}` : n.prefix);
const prefixOfKey = (key: string) => {
  const i = key.indexOf('#');
  return i < 0 ? key : key.slice(0, i);
};
const familyOf = (prefix: string) => (prefix.includes(':') ? IPV6_UNICAST : IPV4_UNICAST);

/**
 * One Loc-RIB entry. There is one per prefix, so it is kept small: every field
 * set in the constructor (one fixed shape), a one-element path array for the
 * usual single path, and the multipath set stored only when it is more than
 * the best path alone.
 */
class Dest implements Destination {
  best?: Path = undefined;
  reason = '';
  /** Next hops last handed to the kernel, joined. */
  installed = '';
  private ecmp?: Path[] = undefined;

  constructor(
    readonly family: number,
    readonly prefix: string,
    public paths: Path[],
  ) {}

  get multipath(): Path[] {
    return this.ecmp ?? (this.best ? [this.best] : []);
  }

  set multipath(m: Path[]) {
    this.ecmp = m.length > 1 ? m : undefined;
  }
}

export class Rib {
  private readonly peers = new Map<string, PeerState>();
  private readonly dests = new Map<string, Dest>();
  private readonly dirty = new Set<string>();
  private readonly localAttrs = new Map<string, RouteAttrs>();
  /** One Path object per originated attribute set, shared by all its prefixes. */
  private readonly localPaths = new Map<RouteAttrs, Path>();

  constructor(readonly local: LocalConfig) {}

  addPeer(cfg: RibPeer): void {
    if (this.peers.has(cfg.id)) throw new Error(`peer ${cfg.id} exists`);
    this.peers.set(cfg.id, {
      cfg,
      configuredSelf: cfg.selfNextHop,
      importFilter: cfg.importPrefixes ? new PrefixFilter(cfg.importPrefixes) : undefined,
      exportFilter: cfg.exportPrefixes ? new PrefixFilter(cfg.exportPrefixes) : undefined,
      up: false,
      routerId: '0.0.0.0',
      families: new Set(),
      adjIn: new Map(),
      adjOut: new Map(),
      exportCache: new WeakMap(),
      needsFullTable: false,
      filtered: 0,
    });
  }

  removePeer(id: string): void {
    this.peerDown(id);
    this.peers.delete(id);
  }

  peerUp(id: string, opts: { routerId: string; families: Iterable<number>; selfNextHop?: RibPeer['selfNextHop'] }): void {
    const p = this.peer(id);
    // Configured next hops win over the session's local address.
    p.cfg = { ...p.cfg, selfNextHop: { ...opts.selfNextHop, ...p.configuredSelf } };
    p.exportCache = new WeakMap();
    p.up = true;
    p.routerId = opts.routerId;
    p.families = new Set(opts.families);
    p.adjOut.clear();
    p.needsFullTable = true;
  }

  /** ROUTE-REFRESH: send the peer everything again. */
  refresh(id: string): void {
    const p = this.peer(id);
    if (!p.up) return;
    p.adjOut.clear();
    p.needsFullTable = true;
  }

  isUp(id: string): boolean {
    return this.peers.get(id)?.up ?? false;
  }

  /**
   * The session ended. With `keepStale` (graceful restart helper, RFC 4724 §4.2)
   * the peer's routes in those families stay, marked stale, until End-of-RIB or a sweep.
   */
  peerDown(id: string, opts: { keepStale?: Iterable<number> } = {}): void {
    const p = this.peer(id);
    p.up = false;
    p.adjOut.clear();
    p.needsFullTable = false;
    const keep = new Set(opts.keepStale ?? []);
    const staleOf = new Map<Path, Path>(); // paths are shared by many routes: so are their stale copies
    for (const [key, path] of p.adjIn) {
      const prefix = prefixOfKey(key);
      if (keep.has(familyOf(prefix))) {
        if (path.stale) continue;
        let stale = staleOf.get(path);
        if (!stale) staleOf.set(path, (stale = { ...path, stale: true }));
        this.replacePath(prefix, path, stale, p, key);
      } else this.removePath(prefix, path, p, key);
    }
  }

  /** Remove the peer's stale routes (after its End-of-RIB for `family`, or all when the restart timer runs out). */
  sweepStale(id: string, family?: number): number {
    const p = this.peer(id);
    let n = 0;
    for (const [key, path] of p.adjIn) {
      const prefix = prefixOfKey(key);
      if (path.stale && (family === undefined || familyOf(prefix) === family)) {
        this.removePath(prefix, path, p, key);
        n++;
      }
    }
    return n;
  }

  hasStale(id: string): boolean {
    for (const path of this.peer(id).adjIn.values()) if (path.stale) return true;
    return false;
  }

  /** Apply one UPDATE's changes from a peer (import policy and loop checks here). */
  applyUpdate(id: string, families: FamilyChanges[]): ImportResult {
    const p = this.peer(id);
    const r: ImportResult = { accepted: 0, withdrawn: 0, filtered: 0 };
    const ebgp = p.cfg.asn !== this.local.asn;
    const clusterId = this.local.clusterId ?? this.local.routerId;
    for (const f of families) {
      if (!p.families.has(f.family)) continue;
      for (const n of f.withdraw) if (this.withdrawFrom(p, n)) r.withdrawn++;
      if (!f.announce.length || !f.attrs) continue;
      let attrs = f.attrs;
      let reject: string | undefined;
      if (ebgp) {
        // §9.1.2: a path containing our own AS is a loop; LOCAL_PREF from eBGP is ignored (RFC 7606 §7.5).
        if (attrs.asPath.some((s) => s.asns.includes(this.local.asn))) reject = 'as-path-loop';
        if (attrs.localPref !== undefined || attrs.originatorId || attrs.clusterList) {
          attrs = { ...attrs };
          delete attrs.localPref;
          delete attrs.originatorId;
          delete attrs.clusterList;
        }
      } else {
        // RFC 4456 §8: reflected routes that come back to us are loops.
        if (attrs.originatorId === this.local.routerId) reject = 'originator-id-loop';
        else if (attrs.clusterList?.includes(clusterId)) reject = 'cluster-list-loop';
      }
      // Routes of one UPDATE share their Path (it names no prefix): one object per
      // attribute set and path id instead of one per route.
      let shared: Path | undefined;
      let byPathId: Map<number, Path> | undefined;
      const pathFor = (pathId: number): Path => {
        if (pathId === 0) return (shared ??= { peerId: p.cfg.id, pathId, attrs, ebgp, routerId: p.routerId, peerAddress: p.cfg.address });
        byPathId ??= new Map();
        let x = byPathId.get(pathId);
        if (!x) byPathId.set(pathId, (x = { peerId: p.cfg.id, pathId, attrs, ebgp, routerId: p.routerId, peerAddress: p.cfg.address }));
        return x;
      };
      for (const n of f.announce) {
        const allowed = !reject && (p.importFilter ? p.importFilter.matches(n.prefix) : !ebgp); // RFC 8212 for eBGP
        if (!allowed) {
          r.filtered++;
          p.filtered++;
          if (this.withdrawFrom(p, n)) r.withdrawn++;
          continue;
        }
        const key = pathKey(n);
        const old = p.adjIn.get(key);
        const path = pathFor(n.pathId ?? 0);
        if (old) this.replacePath(n.prefix, old, path, p, key);
        else this.addPath(n.prefix, path, p, key);
        r.accepted++;
      }
    }
    if (p.cfg.maxPrefix !== undefined && p.adjIn.size > p.cfg.maxPrefix) r.maxPrefixExceeded = true;
    return r;
  }

  /** Originate a prefix from this speaker (e.g. an IPAM block). */
  originate(prefix: string, attrs: Partial<RouteAttrs> = {}): void {
    // Originated routes with equal attributes share one object, so they leave in shared UPDATEs.
    let key = '';
    for (const _ in attrs) {
      key = JSON.stringify(attrs);
      break;
    }
    let shared = this.localAttrs.get(key);
    if (!shared) this.localAttrs.set(key, (shared = { origin: 0, asPath: [], nextHop: '', ...attrs }));
    let path = this.localPaths.get(shared);
    if (!path) this.localPaths.set(shared, (path = { peerId: LOCAL_PEER_ID, pathId: 0, attrs: shared, ebgp: false, routerId: this.local.routerId, peerAddress: '0.0.0.0' }));
    const d = this.dests.get(prefix);
    const old = d?.paths.find((x) => x.peerId === LOCAL_PEER_ID);
    if (old) this.swap(prefix, old, path);
    else this.insert(prefix, path);
  }

  withdrawOriginated(prefix: string): boolean {
    const old = this.dests.get(prefix)?.paths.find((x) => x.peerId === LOCAL_PEER_ID);
    if (!old) return false;
    this.drop(prefix, old);
    return true;
  }

  originated(): string[] {
    return [...this.dests.values()].filter((d) => d.paths.some((p) => p.peerId === LOCAL_PEER_ID)).map((d) => d.prefix);
  }

  /** Run the decision process for every changed prefix; return kernel and per-peer work. */
  flush(): FlushResult {
    const fib: FibChange[] = [];
    const out = new Map<string, PeerOut>();
    const upPeers = [...this.peers.values()].filter((p) => p.up);
    const groups = new Map<PeerState, Map<RouteAttrs, { family: number; attrs: RouteAttrs; prefixes: string[] }>>();
    const withdraws = new Map<PeerState, Map<number, string[]>>();
    const emit = (p: PeerState, prefix: string, attrs: RouteAttrs | undefined) => {
      const old = p.adjOut.get(prefix);
      if (old === attrs) return;
      const family = familyOf(prefix);
      if (attrs) {
        p.adjOut.set(prefix, attrs);
        let g = groups.get(p);
        if (!g) groups.set(p, (g = new Map()));
        let e = g.get(attrs);
        if (!e) g.set(attrs, (e = { family, attrs, prefixes: [] }));
        e.prefixes.push(prefix);
      } else if (old) {
        p.adjOut.delete(prefix);
        let w = withdraws.get(p);
        if (!w) withdraws.set(p, (w = new Map()));
        let l = w.get(family);
        if (!l) w.set(family, (l = []));
        l.push(prefix);
      }
    };
    const full = upPeers.filter((p) => p.needsFullTable);
    const incremental = upPeers.filter((p) => !p.needsFullTable);
    for (const prefix of this.dirty) {
      const d = this.dests.get(prefix);
      if (!d) continue;
      const sel = selectBest(d.paths, this.local.maxPaths ?? 1);
      d.best = sel.best;
      d.reason = sel.reason;
      d.multipath = sel.multipath;
      // Locally originated routes are not installed. The single next hop is the common case: compared without building arrays.
      const best = sel.best;
      const local = !best || best.peerId === LOCAL_PEER_ID;
      const single = sel.multipath.length === 1;
      const hops = local || single ? undefined : sel.multipath.filter((p) => p.peerId !== LOCAL_PEER_ID).map((p) => p.attrs.nextHop);
      const installed = local ? '' : single ? best.attrs.nextHop : hops!.join(',');
      if (installed !== d.installed) {
        d.installed = installed;
        fib.push({ family: d.family, prefix, nextHops: hops ?? (local ? [] : [installed]) });
      }
      for (const p of incremental) emit(p, prefix, this.exportFor(p, d));
      if (d.paths.length === 0) this.dests.delete(prefix);
    }
    this.dirty.clear();
    for (const p of full) {
      p.needsFullTable = false;
      for (const d of this.dests.values()) emit(p, d.prefix, this.exportFor(p, d));
    }
    for (const p of upPeers) {
      const g = groups.get(p);
      const w = withdraws.get(p);
      if (!g && !w) continue;
      out.set(p.cfg.id, {
        announce: g ? [...g.values()] : [],
        withdraw: w ? [...w].map(([family, prefixes]) => ({ family, prefixes })) : [],
      });
    }
    return { fib, out };
  }

  destination(prefix: string): Destination | undefined {
    return this.dests.get(prefix);
  }

  destinations(): IterableIterator<Destination> {
    return this.dests.values();
  }

  stats(id: string): PeerStats {
    const p = this.peer(id);
    return { received: p.adjIn.size + p.filtered, accepted: p.adjIn.size, filtered: p.filtered, sent: p.adjOut.size };
  }

  private exportFor(p: PeerState, d: Destination): RouteAttrs | undefined {
    const best = d.best;
    if (!best || !p.families.has(d.family)) return undefined;
    if (p.exportFilter && !p.exportFilter.matches(d.prefix)) return undefined;
    // Past the prefix filter, the result depends only on the attribute set (one per UPDATE and family),
    // so routes that arrived together leave together and share one object.
    let cached = p.exportCache.get(best.attrs);
    if (cached === undefined) {
      const src = this.peers.get(best.peerId);
      cached = exportAttrs(best, d.prefix, src && { rrClient: !!src.cfg.rrClient }, { cfg: p.cfg, exportFilter: p.exportFilter && ALLOW_ALL }, this.local) ?? null;
      p.exportCache.set(best.attrs, cached);
    }
    return cached ?? undefined;
  }

  private peer(id: string): PeerState {
    const p = this.peers.get(id);
    if (!p) throw new Error(`unknown peer ${id}`);
    return p;
  }

  private withdrawFrom(p: PeerState, n: Nlri): boolean {
    const key = pathKey(n);
    const old = p.adjIn.get(key);
    if (!old) return false;
    this.removePath(n.prefix, old, p, key);
    return true;
  }

  private addPath(prefix: string, path: Path, p: PeerState, key: string): void {
    p.adjIn.set(key, path);
    this.insert(prefix, path);
  }
  private replacePath(prefix: string, old: Path, path: Path, p: PeerState, key: string): void {
    p.adjIn.set(key, path);
    this.swap(prefix, old, path);
  }
  private removePath(prefix: string, old: Path, p: PeerState, key: string): void {
    p.adjIn.delete(key);
    this.drop(prefix, old);
  }

  private insert(prefix: string, path: Path): void {
    const d = this.dests.get(prefix);
    if (!d) this.dests.set(prefix, new Dest(familyOf(prefix), prefix, [path]));
    else d.paths.push(path);
    this.dirty.add(prefix);
  }
  private swap(prefix: string, old: Path, path: Path): void {
    const d = this.dests.get(prefix)!;
    d.paths[d.paths.indexOf(old)] = path;
    this.dirty.add(prefix);
  }
  private drop(prefix: string, old: Path): void {
    const d = this.dests.get(prefix);
    if (!d) return;
    d.paths = d.paths.filter((x) => x !== old);
    this.dirty.add(prefix);
  }
}
