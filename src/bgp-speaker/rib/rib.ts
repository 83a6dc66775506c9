/**
 * Adj-RIB-In per peer, the Loc-RIB, and Adj-RIB-Out per peer, pure and
 * synchronous. Inputs are peer events and decoded route changes; `flush()`
 * returns what each peer must be told, computed once per changed prefix; the
 * kernel's changes wait in the entries themselves until `takeFib()` takes them.
 */
import { IPV4_UNICAST, IPV6_UNICAST, v4KeyText, v4PrefixKey, type FamilyChanges, type RouteAttrs } from '../codec';
import { selectBest, type Selection } from './decision';
import { exportAttrs } from './export';
import { PrefixFilter } from './policy';
import { LOCAL_PEER_ID, type Destination, type FibBatch, type LocalConfig, type Path, type RibPeer } from './types';
import { TernError } from '../../lib/errors';

interface PeerState {
  cfg: RibPeer;
  configuredSelf: RibPeer['selfNextHop'];
  importFilter?: PrefixFilter;
  exportFilter?: PrefixFilter;
  up: boolean;
  routerId: string;
  families: Set<number>;
  /**
   * Routes accepted from the peer. Its Adj-RIB-In has no map of its own: the
   * paths are in the Loc-RIB entries, where the decision process needs them anyway.
   */
  accepted: number;
  /** Adj-RIB-Out: prefix (as a RIB key) -> attributes last sent. */
  adjOut: Map<DestKey, RouteAttrs>;
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
  out: Map<string, PeerOut>;
}

export interface PeerStats {
  received: number;
  accepted: number;
  filtered: number;
  sent: number;
}

const ALLOW_ALL = new PrefixFilter([{ prefix: '0.0.0.0/0' }, { prefix: '::/0' }]);
const NO_PATHS: readonly Path[] = Object.freeze([]);
const NO_HOPS: readonly string[] = Object.freeze([]);
const familyOf = (prefix: string) => (prefix.includes(':') ? IPV6_UNICAST : IPV4_UNICAST);

/**
 * How the Loc-RIB keys a prefix: an IPv4 prefix as a number (v4PrefixKey: no
 * 32-octet string per route, and Map keys that need no allocation), anything
 * else as its text. A Dest's `prefix` text is made from the key when asked for.
 */
type DestKey = number | string;
const keyOf = (prefix: string): DestKey => v4PrefixKey(prefix) ?? prefix;

/** A FibBatch key for a prefix given as text. */
export const fibKey = (prefix: string): number | string => keyOf(prefix);

/** A FibBatch key's prefix as text. */
export const fibPrefix = (key: number | string): string => (typeof key === 'number' ? v4KeyText(key) : key);

/**
 * An empty batch. Every batch is made here: V8 tracks the element kinds of an array literal per
 * place in the code, so batches made in one place give the compiled takeFib and kernel writer
 * one kind of list to expect, and the warm-up's batches stand for the speaker's.
 */
export function newFibBatch(): FibBatch {
  return { keys: [], nextHops: [] };
}

/** A batch from (prefix, next hops) pairs: for tests and the rare paths that start from text. */
export function fibBatch(changes: Iterable<{ prefix: string; nextHops: readonly string[] }>): FibBatch {
  const b = newFibBatch();
  for (const c of changes) {
    b.keys.push(keyOf(c.prefix));
    b.nextHops.push(c.nextHops);
  }
  return b;
}

/**
 * A FIFO kept in chunks: it grows without copying (an array of 100k entries
 * grows by copies that become large-object garbage at the burst's peak) and
 * its drained chunks go.
 */
class Fifo<T> {
  private static readonly CHUNK = 4096;
  private chunks: (T | undefined)[][] = [];
  private head = 0;
  private n = 0;

  get size(): number {
    return this.n;
  }

  push(x: T): void {
    let last = this.chunks[this.chunks.length - 1];
    if (!last || last.length === Fifo.CHUNK) this.chunks.push((last = []));
    last.push(x);
    this.n++;
  }

  shift(): T | undefined {
    if (!this.n) return undefined;
    const c = this.chunks[0];
    const x = c[this.head];
    c[this.head++] = undefined;
    if (this.head === c.length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.n--;
    return x;
  }
}

/** Dest.state bits: waiting for the decision process; waiting for the kernel (in the RIB's kernel queue). */
const DIRTY = 1;
const FIB_PENDING = 2;

/**
 * The decision of each entry that had more than one path to decide between.
 * Not a field of Dest: most entries have a single path, and a field is 8
 * octets in every one of them.
 */
const selections = new WeakMap<Dest, Selection>();

/**
 * One Loc-RIB entry. There is one per prefix, so it is kept small: every field
 * set in the constructor (one fixed shape), a decision kept (in `selections`)
 * only when there was more than one path to decide between, and `paths` never
 * changed in place, so that the usual single path is an array shared by all
 * routes of its UPDATE.
 */
class Dest implements Destination {
  /** Next hops the kernel should have, joined ('' for none). */
  installed = '';
  /** DIRTY | FIB_PENDING. */
  state = 0;

  constructor(
    readonly key: DestKey,
    public paths: readonly Path[],
  ) {}

  get prefix(): string {
    return typeof this.key === 'number' ? v4KeyText(this.key) : this.key;
  }

  get family(): number {
    return typeof this.key === 'number' ? IPV4_UNICAST : familyOf(this.key);
  }

  private get sel(): Selection | undefined {
    return this.paths.length > 1 ? selections.get(this) : undefined;
  }

  get best(): Path | undefined {
    const sel = this.sel;
    return sel ? sel.best : this.paths[0];
  }

  get reason(): string {
    const sel = this.sel;
    return sel ? sel.reason : this.paths.length ? 'only-path' : 'no-path';
  }

  get multipath(): Path[] {
    const sel = this.sel;
    return sel ? sel.multipath : this.paths.slice(0, 1);
  }

  /** Run the decision process; a single path wins without one. */
  decide(maxPaths: number): void {
    if (this.paths.length > 1) selections.set(this, selectBest(this.paths, maxPaths));
    else selections.delete(this);
  }
}

export class Rib {
  private readonly peers = new Map<string, PeerState>();
  private readonly dests = new Map<DestKey, Dest>();
  private readonly dirty = new Fifo<Dest>();
  /**
   * Entries whose kernel state changed, oldest first. The queue holds the
   * entries, not changes: `takeFib()` reads their state when it takes them, so
   * repeated changes to one prefix coalesce. An entry whose last path went
   * stays here (out of the Map) until its removal is taken.
   */
  private readonly fibQueue = new Fifo<Dest>();
  /** The one-element path array of each path, shared by every prefix that has only that path. */
  private readonly solo = new WeakMap<Path, readonly Path[]>();
  /** The one-element next-hop list of each attribute set, shared by its kernel changes. */
  private readonly oneHop = new WeakMap<RouteAttrs, readonly string[]>();
  private readonly localAttrs = new Map<string, RouteAttrs>();
  /** One Path object per originated attribute set, shared by all its prefixes. */
  private readonly localPaths = new Map<RouteAttrs, Path>();

  constructor(readonly local: LocalConfig) {}

  addPeer(cfg: RibPeer): void {
    if (this.peers.has(cfg.id)) throw new TernError('INTERNAL', `peer ${cfg.id} exists`);
    this.peers.set(cfg.id, {
      cfg,
      configuredSelf: cfg.selfNextHop,
      importFilter: cfg.importPrefixes ? new PrefixFilter(cfg.importPrefixes) : undefined,
      exportFilter: cfg.exportPrefixes ? new PrefixFilter(cfg.exportPrefixes) : undefined,
      up: false,
      routerId: '0.0.0.0',
      families: new Set(),
      accepted: 0,
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
    // Configured next hops win over the session's local address. Set in place: a copy of cfg made by
    // spreading gets a map that depends on the spread's feedback, and code compiled for one peer's
    // map (the warm-up's) was thrown away on the next one's.
    p.cfg.selfNextHop = { ...opts.selfNextHop, ...p.configuredSelf };
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
    if (!p.accepted) return;
    const keep = new Set(opts.keepStale ?? []);
    const staleOf = new Map<Path, Path>(); // paths are shared by many routes: so are their stale copies
    for (const d of this.dests.values()) {
      for (const path of d.paths) {
        if (path.peerId !== id) continue;
        if (!keep.has(d.family)) this.removeFrom(p, d, path.pathId);
        else if (!path.stale) {
          let stale = staleOf.get(path);
          if (!stale) staleOf.set(path, (stale = { ...path, stale: true }));
          this.put(d, stale);
        }
      }
    }
  }

  /** Remove the peer's stale routes (after its End-of-RIB for `family`, or all when the restart timer runs out). */
  sweepStale(id: string, family?: number): number {
    const p = this.peer(id);
    let n = 0;
    for (const d of this.dests.values()) {
      if (family !== undefined && d.family !== family) continue;
      for (const path of d.paths) {
        if (path.peerId === id && path.stale) {
          this.removeFrom(p, d, path.pathId);
          n++;
        }
      }
    }
    return n;
  }

  hasStale(id: string): boolean {
    if (!this.peer(id).accepted) return false;
    for (const d of this.dests.values()) for (const path of d.paths) if (path.stale && path.peerId === id) return true;
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
        const key = keyOf(n.prefix);
        const allowed = !reject && (p.importFilter ? p.importFilter.matchesKey(key) : !ebgp); // RFC 8212 for eBGP
        if (!allowed) {
          r.filtered++;
          p.filtered++;
          if (this.withdrawFrom(p, n)) r.withdrawn++;
          continue;
        }
        if (this.setPath(key, pathFor(n.pathId ?? 0))) p.accepted++;
        r.accepted++;
      }
    }
    if (p.cfg.maxPrefix !== undefined && p.accepted > p.cfg.maxPrefix) r.maxPrefixExceeded = true;
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
    this.setPath(keyOf(prefix), path);
  }

  withdrawOriginated(prefix: string): boolean {
    const d = this.dests.get(keyOf(prefix));
    const i = d ? indexOfPath(d.paths, LOCAL_PEER_ID, 0) : -1;
    if (i < 0) return false;
    this.drop(d!, i);
    return true;
  }

  originated(): string[] {
    return [...this.dests.values()].filter((d) => d.paths.some((p) => p.peerId === LOCAL_PEER_ID)).map((d) => d.prefix);
  }

  /** Run the decision process for every changed prefix; return per-peer work (kernel work waits for takeFib). */
  flush(): FlushResult {
    const out = new Map<string, PeerOut>();
    const upPeers = [...this.peers.values()].filter((p) => p.up);
    const groups = new Map<PeerState, Map<RouteAttrs, { family: number; attrs: RouteAttrs; prefixes: string[] }>>();
    const withdraws = new Map<PeerState, Map<number, string[]>>();
    const emit = (p: PeerState, d: Dest, attrs: RouteAttrs | undefined) => {
      const old = p.adjOut.get(d.key);
      if (old === attrs) return;
      const family = d.family;
      const prefix = d.prefix;
      if (attrs) {
        p.adjOut.set(d.key, attrs);
        let g = groups.get(p);
        if (!g) groups.set(p, (g = new Map()));
        let e = g.get(attrs);
        if (!e) g.set(attrs, (e = { family, attrs, prefixes: [] }));
        e.prefixes.push(prefix);
      } else if (old) {
        p.adjOut.delete(d.key);
        let w = withdraws.get(p);
        if (!w) withdraws.set(p, (w = new Map()));
        let l = w.get(family);
        if (!l) w.set(family, (l = []));
        l.push(prefix);
      }
    };
    const full = upPeers.filter((p) => p.needsFullTable);
    const incremental = upPeers.filter((p) => !p.needsFullTable);
    for (let d = this.dirty.shift(); d; d = this.dirty.shift()) {
      d.state &= ~DIRTY;
      d.decide(this.local.maxPaths ?? 1);
      // Locally originated routes are not installed. The single next hop is the common case: compared without building arrays.
      const best = d.best;
      const local = !best || best.peerId === LOCAL_PEER_ID;
      const multipath = d.paths.length > 1 ? d.multipath : undefined;
      const single = !multipath || multipath.length === 1;
      const hops = local || single ? undefined : multipath!.filter((p) => p.peerId !== LOCAL_PEER_ID).map((p) => p.attrs.nextHop);
      const installed = local ? '' : single ? best.attrs.nextHop : hops!.join(',');
      if (installed !== d.installed) {
        d.installed = installed;
        if (!(d.state & FIB_PENDING)) {
          d.state |= FIB_PENDING;
          this.fibQueue.push(d);
        }
      }
      for (const p of incremental) emit(p, d, this.exportFor(p, d));
      if (d.paths.length === 0) this.dests.delete(d.key);
    }
    for (const p of full) {
      p.needsFullTable = false;
      for (const d of this.dests.values()) emit(p, d, this.exportFor(p, d));
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
    return { out };
  }

  /**
   * Up to `max` kernel changes, oldest first, each with the next hops the
   * Loc-RIB wants now (empty: remove), appended to `into`; taken changes leave the queue.
   */
  takeFib(max = Infinity, into: FibBatch = newFibBatch()): FibBatch {
    for (let n = 0; n < max; n++) {
      const d = this.fibQueue.shift();
      if (!d) break;
      d.state &= ~FIB_PENDING;
      into.keys.push(d.key);
      into.nextHops.push(this.hopsOf(d));
    }
    return into;
  }

  /** Forget the kernel changes waiting (a speaker without a kernel). */
  dropFib(): void {
    for (let d = this.fibQueue.shift(); d; d = this.fibQueue.shift()) d.state &= ~FIB_PENDING;
  }

  /** Kernel changes waiting for takeFib. */
  fibPending(): number {
    return this.fibQueue.size;
  }

  /** Whether a kernel change for the prefix waits for takeFib. */
  isFibPending(prefix: string): boolean {
    const d = this.dests.get(keyOf(prefix));
    return !!d && (d.state & FIB_PENDING) !== 0;
  }

  /** Routes that could not be sent to a peer after all (too long for it): forget them, so a later change is sent. */
  unsent(id: string, prefixes: readonly string[]): void {
    const p = this.peers.get(id);
    if (p) for (const prefix of prefixes) p.adjOut.delete(keyOf(prefix));
  }

  /** The next hops the Loc-RIB wants in the kernel for a prefix (empty: none). */
  installedHops(prefix: string): string[] {
    const d = this.dests.get(keyOf(prefix));
    return d && d.installed ? d.installed.split(',') : [];
  }

  destination(prefix: string): Destination | undefined {
    return this.dests.get(keyOf(prefix));
  }

  destinations(): IterableIterator<Destination> {
    return this.dests.values();
  }

  stats(id: string): PeerStats {
    const p = this.peer(id);
    return { received: p.accepted + p.filtered, accepted: p.accepted, filtered: p.filtered, sent: p.adjOut.size };
  }

  private exportFor(p: PeerState, d: Dest): RouteAttrs | undefined {
    const best = d.best;
    if (!best || !p.families.has(d.family)) return undefined;
    if (p.exportFilter && !p.exportFilter.matchesKey(d.key)) return undefined;
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
    if (!p) throw new TernError('INTERNAL', `unknown peer ${id}`);
    return p;
  }

  private withdrawFrom(p: PeerState, n: { prefix: string; pathId?: number }): boolean {
    const d = this.dests.get(keyOf(n.prefix));
    return !!d && this.removeFrom(p, d, n.pathId ?? 0);
  }

  private removeFrom(p: PeerState, d: Dest, pathId: number): boolean {
    const i = indexOfPath(d.paths, p.cfg.id, pathId);
    if (i < 0) return false;
    this.drop(d, i);
    p.accepted--;
    return true;
  }

  /** Add `path` to its prefix, or put it in place of the path it replaces (same peer and path id); true when added. */
  private setPath(key: DestKey, path: Path): boolean {
    const d = this.dests.get(key);
    if (d) return this.put(d, path);
    const nd = new Dest(key, this.soloOf(path));
    this.dests.set(key, nd);
    this.markDirty(nd);
    return true;
  }

  private put(d: Dest, path: Path): boolean {
    const i = indexOfPath(d.paths, path.peerId, path.pathId);
    if (d.paths.length === (i < 0 ? 0 : 1)) d.paths = this.soloOf(path);
    else if (i < 0) d.paths = [...d.paths, path];
    else d.paths = d.paths.map((x, j) => (j === i ? path : x));
    this.markDirty(d);
    return i < 0;
  }

  private drop(d: Dest, i: number): void {
    d.paths = d.paths.length === 1 ? NO_PATHS : d.paths.filter((_, j) => j !== i);
    this.markDirty(d);
  }

  private markDirty(d: Dest): void {
    if (d.state & DIRTY) return;
    d.state |= DIRTY;
    this.dirty.push(d);
  }

  /** The next hops in `d.installed` as a list; the single next hop of the best path is its shared list. */
  private hopsOf(d: Dest): readonly string[] {
    if (!d.installed) return NO_HOPS;
    const best = d.best;
    return best && best.attrs.nextHop === d.installed ? this.nextHopList(best.attrs) : d.installed.split(',');
  }

  private soloOf(path: Path): readonly Path[] {
    let a = this.solo.get(path);
    if (!a) this.solo.set(path, (a = Object.freeze([path])));
    return a;
  }

  private nextHopList(attrs: RouteAttrs): readonly string[] {
    let a = this.oneHop.get(attrs);
    if (!a) this.oneHop.set(attrs, (a = Object.freeze([attrs.nextHop])));
    return a;
  }
}

function indexOfPath(paths: readonly Path[], peerId: string, pathId: number): number {
  for (let i = 0; i < paths.length; i++) if (paths[i].peerId === peerId && paths[i].pathId === pathId) return i;
  return -1;
}
