/**
 * The speaker: sessions, the RIB, and the glue between them. The kernel is
 * reached only through the FibSink passed in (the BGP core never imports the
 * dataplane); `stop()` leaves the kernel as is when graceful restart is on.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import type { Logger } from '../lib/log';
import { messageOf } from '../lib/errors';
import { buildAnnouncements, buildWithdrawals, canonicalPrefix, fitAttrs, isMartianNextHop, NotifyCode, CeaseSubcode, IPV4_UNICAST, IPV6_UNICAST, type CodecOptions, type Nlri, type RouteAttrs, type UpdateChanges } from './codec';
import { Rib, fibKey, fibPrefix, newFibBatch, parsePrefixRule, type FibBatch, type PeerOut, type RibPeer, LOCAL_PEER_ID } from './rib';
import { Session, type BgpSocketOptions } from './session';
import { TernError } from '../lib/errors';
import { familiesOf, type PeerSpec, type SpeakerConfig } from './config';
import { Bfd, type BfdStatus } from './bfd/bfd';

/** One route the kernel refused (errno from rtnetlink). */
export interface FibFailure {
  prefix: string;
  errno: number;
}

export interface FibSink {
  /** Install (next hops non-empty) or remove routes; called with one batch at a time. Returns the routes the kernel refused. */
  apply(batch: FibBatch): Promise<FibFailure[] | void>;
  /** Initial convergence reached: remove our kernel routes that were not re-learned (mark and sweep). */
  converged?(): Promise<void>;
  /** Next hops that now resolve through another gateway (polled): their routes are written again. */
  movedNextHops?(): Promise<string[]>;
}

export interface PeerView {
  address: string;
  asn: number;
  state: string;
  since: string;
  uptimeSeconds: number;
  routerId?: string;
  holdTime?: number;
  received: number;
  accepted: number;
  filtered: number;
  sent: number;
  lastError?: string;
  bfd?: BfdStatus;
}

export interface RouteView {
  prefix: string;
  best?: { peer: string; nextHop: string; asPath: string; origin: number; localPref?: number; med?: number; communities?: number[]; stale?: boolean };
  reason: string;
  paths: { peer: string; nextHop: string; asPath: string; stale?: boolean }[];
  multipath: string[];
  /** Set while the kernel refuses this route: it is then not in the kernel at all (never an older next hop). */
  kernelError?: string;
}

export interface SpeakerStats {
  routes: number;
  fibApplied: number;
  fibPending: number;
  fibErrors: number;
  /** Routes the kernel refuses right now (retried every few seconds). */
  fibFailed: number;
}

const fmtPath = (segs: { type: number; asns: number[] }[]) => segs.map((s) => (s.type === 1 ? `{${s.asns.join(' ')}}` : s.asns.join(' '))).join(' ');

/**
 * The TTL a session sends with and the lowest it accepts, as BIRD, GoBGP and
 * FRR do it: GTSM (RFC 5082) sends 255 and accepts 255 - (hops - 1); eBGP is
 * single-hop (TTL 1) unless `multihop` says otherwise; iBGP keeps the kernel
 * default unless `multihop` is set.
 */
export function ttlFor(p: Pick<PeerSpec, 'asn' | 'multihop' | 'ttlSecurity'>, localAsn: number): { ttl: number; minTtl: number } | undefined {
  if (p.ttlSecurity) {
    const hops = p.ttlSecurity === true ? 1 : p.ttlSecurity;
    return { ttl: 255, minTtl: 256 - hops };
  }
  if (p.multihop) return { ttl: p.multihop, minTtl: 0 };
  return p.asn !== localAsn ? { ttl: 1, minTtl: 0 } : undefined;
}

/** The RIB of a speaker with this configuration (the warm-up builds its scratch RIBs here too). */
export function newRib(cfg: Pick<SpeakerConfig, 'asn' | 'routerId' | 'clusterId' | 'maxPaths'>): Rib {
  return new Rib({ asn: cfg.asn, routerId: cfg.routerId, clusterId: cfg.clusterId, maxPaths: cfg.maxPaths });
}

/** A configured peer as the RIB sees it. */
export function ribPeer(p: PeerSpec): RibPeer {
  return {
    id: p.address,
    address: p.address,
    asn: p.asn,
    rrClient: p.routeReflectorClient,
    nextHopSelf: p.nextHopSelf,
    keepNextHop: p.keepNextHop,
    selfNextHop: p.nextHop ?? {},
    importPrefixes: p.importPrefixes?.map(parsePrefixRule),
    exportPrefixes: p.exportPrefixes?.map(parsePrefixRule),
    maxPrefix: p.maxPrefix,
  };
}

/** Prefixes encoded per step (about ten full UPDATEs of IPv4 /26s), so a full table is encoded as the socket takes it. */
const ENCODE_STEP = 8192;

/** How often routes the kernel refused are tried again; how long the set of local addresses is trusted. */
const FIB_RETRY_MS = 5000;
/** How often the underlay is asked whether learned next hops moved (BIRD's recursive next hops follow its IGP table). */
const NEXT_HOP_RECHECK_MS = 2000;
const EARLY_FLUSH_ROUTES = 8192;
/**
 * Most routes handed to the kernel sink per call: the route writer's whole window (8 sends of
 * 512), since the next batch waits for this one's ACKs. A batch is two lists (keys, next-hop
 * lists); when it still held a change object and prefix text per route, 2048 gave a peak RSS
 * 4-5 MiB under 8192's at 100k routes (BENCHMARKS.md).
 */
export const FIB_STEP = 4096;
const NO_HOPS: readonly string[] = Object.freeze([]);
const LOCAL_ADDRS_TTL_MS = 2000;

/** The UPDATEs for one peer's changes, withdrawals first, encoded a step at a time. */
function* encodeOut(o: PeerOut, opts: CodecOptions): Generator<Buffer> {
  const step = (prefixes: string[], i: number): Nlri[] => prefixes.slice(i, i + ENCODE_STEP).map((prefix) => ({ prefix }));
  for (const w of o.withdraw) for (let i = 0; i < w.prefixes.length; i += ENCODE_STEP) yield* buildWithdrawals(w.family, step(w.prefixes, i), opts);
  for (const a of o.announce) for (let i = 0; i < a.prefixes.length; i += ENCODE_STEP) yield* buildAnnouncements(a.family, a.attrs, step(a.prefixes, i), opts);
}

export class Speaker {
  readonly rib: Rib;
  private readonly sessions = new Map<string, Session>();
  private server?: net.Server;
  private flushScheduled = false;
  private readonly eorPending = new Set<Session>();
  private readonly eorReceived = new Map<string, Set<number>>();
  private readonly staleTimers = new Map<string, NodeJS.Timeout>();
  /**
   * Kernel work besides the RIB's own queue (Rib.takeFib), which holds what the
   * decision process changed: retries, removals after a refusal, routes whose
   * next hop moved. prefix -> next hops (empty: remove); taken before the RIB's.
   */
  private fibQueue = new Map<string, readonly string[]>();
  /** Stopping with graceful restart: queued removals are not applied. */
  private keepRoutes = false;
  private fibRunning?: Promise<void>;
  private converged = false;
  private convergeTimer?: NodeJS.Timeout;
  private fibApplied = 0;
  private fibErrors = 0;
  /** prefix -> why the kernel refused its route; such a prefix is kept out of the kernel until a retry works. */
  private readonly fibFailed = new Map<string, string>();
  private fibRetryTimer?: NodeJS.Timeout;
  /** Queued removals that are there because an install was refused: their success does not clear the refusal. */
  private readonly refusedRemovals = new Set<string>();
  /** Whether this speaker's own table is complete, so End-of-RIB may follow it (RFC 4724 §4.1). */
  private localReady: boolean;
  private readyTimer?: NodeJS.Timeout;
  private localAddrs?: { at: number; set: Set<string> };
  private bfd?: Bfd;
  private recheckTimer?: NodeJS.Timeout;
  /** Routes applied to the RIB since the last flush. */
  private unflushed = 0;

  constructor(
    readonly cfg: SpeakerConfig,
    private readonly deps: {
      log: Logger;
      fib?: FibSink;
      restarting?: boolean;
      sockopts?: BgpSocketOptions;
      /** After a restart, hold End-of-RIB until ready() (whoever feeds the table says so), at most this many seconds. */
      holdEndOfRib?: number;
    },
  ) {
    this.localReady = !(deps.restarting && deps.holdEndOfRib);
    this.rib = newRib(cfg);
  }

  private started = false;

  async start(): Promise<void> {
    for (const p of this.cfg.peers) this.addPeer(p);
    for (const r of this.cfg.routes ?? []) this.rib.originate(r);
    if (this.cfg.listen !== false) await this.listen();
    this.started = true;
    for (const s of this.sessions.values()) s.start();
    if (!this.localReady) this.readyTimer = setTimeout(() => this.ready(), this.deps.holdEndOfRib! * 1000);
    if (this.deps.fib?.movedNextHops) this.recheckTimer = setTimeout(() => void this.followUnderlay(), NEXT_HOP_RECHECK_MS);
    // Mark and sweep: after every peer sent End-of-RIB, or after a deadline, whichever comes first.
    this.convergeTimer = setTimeout(() => this.markConverged(), (this.cfg.gracefulRestart?.restartTime ?? 30) * 1000);
    this.schedule();
  }

  /** Add a peer (at start, or later as nodes join a full mesh); a known address is left as is. */
  addPeer(p: PeerSpec): void {
    if (this.sessions.has(p.address)) return;
    if ((p.password || p.multihop || p.ttlSecurity) && !this.deps.sockopts) throw new TernError('INVALID_CONFIG', `bgp config: peer ${p.address}: password, multihop and ttlSecurity need the native addon`);
    this.rib.addPeer(ribPeer(p));
    const log = this.deps.log.child({ peer: p.address });
    const s = new Session(
      {
        address: p.address,
        port: p.port ?? 179,
        asn: p.asn,
        localAsn: this.cfg.asn,
        routerId: this.cfg.routerId,
        localAddress: p.localAddress,
        passive: !!p.passive,
        holdTime: p.holdTime ?? this.cfg.holdTime ?? 90,
        connectRetryTime: p.connectRetryTime ?? this.cfg.connectRetryTime ?? 30,
        idleHoldTime: this.cfg.idleHoldTime ?? 5,
        families: familiesOf(this.cfg),
        gracefulRestart: p.gracefulRestart !== false && this.cfg.gracefulRestart ? this.cfg.gracefulRestart : undefined,
        restarting: this.deps.restarting,
        password: p.password,
        ttl: this.deps.sockopts ? ttlFor(p, this.cfg.asn) : undefined,
      },
      {
        established: (x) => this.onEstablished(x),
        down: (x, reason, graceful) => this.onDown(x, reason, graceful),
        update: (x, ch) => this.onUpdate(x, ch),
        routeRefresh: (x) => {
          this.rib.refresh(x.cfg.address);
          this.schedule();
        },
      },
      log,
      this.deps.sockopts,
    );
    this.sessions.set(p.address, s);
    if (p.password) this.listenerKey(p.address, p.password);
    if (p.bfd) {
      this.bfd ??= new Bfd(this.deps.log.child({ component: 'bfd' }), this.deps.sockopts);
      this.bfd.add(p.address, p.bfd, (up) => this.onBfd(p.address, up), p.localAddress).catch((e) => this.deps.log.error({ peer: p.address, err: messageOf(e) }, 'BFD session failed to start'));
    }
    if (this.started) s.start();
  }

  /** Remove a peer (a node left): close its session with a Cease and withdraw what it taught us. */
  removePeer(address: string): void {
    const s = this.sessions.get(address);
    if (!s) return;
    this.sessions.delete(address);
    this.eorPending.delete(s);
    clearTimeout(this.staleTimers.get(address));
    this.staleTimers.delete(address);
    this.rib.removePeer(address);
    this.bfd?.remove(address);
    s.stop(false);
    if (s.cfg.password) this.listenerKey(address, '');
    this.schedule();
  }

  peerAddresses(): string[] {
    return [...this.sessions.keys()];
  }

  private listen(): Promise<void> {
    const l = this.cfg.listen || {};
    this.server = net.createServer((socket) => {
      const addr = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      const s = this.sessions.get(addr);
      if (!s) {
        socket.destroy(); // not a configured peer
        return;
      }
      s.accept(socket);
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen({ host: l.address ?? '::', port: l.port ?? 179, ipv6Only: false }, () => {
        for (const [addr, sess] of this.sessions) if (sess.cfg.password) this.listenerKey(addr, sess.cfg.password);
        resolve();
      });
    });
  }

  /**
   * Keys on the listening socket: accepted connections inherit them, and the
   * kernel drops unsigned or wrongly signed SYNs from that peer. A dual-stack
   * listener sees IPv4 peers as v4-mapped addresses, so they are keyed so.
   */
  private listenerKey(address: string, key: string): void {
    const fd = (this.server as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    if (fd === undefined || fd < 0 || !this.deps.sockopts) return; // not listening yet: listen() keys them
    const v6Listener = (this.server!.address() as net.AddressInfo).family === 'IPv6';
    try {
      this.deps.sockopts.setKey(fd, v6Listener && net.isIPv4(address) ? `::ffff:${address}` : address, key);
    } catch (e) {
      if (key) throw e; // removing a key that is already gone is fine
    }
  }

  async stop(): Promise<void> {
    const graceful = !!this.cfg.gracefulRestart;
    for (const s of this.sessions.values()) s.stop(graceful);
    for (const t of this.staleTimers.values()) clearTimeout(t);
    clearTimeout(this.convergeTimer);
    clearTimeout(this.readyTimer);
    clearTimeout(this.fibRetryTimer);
    clearTimeout(this.recheckTimer);
    this.recheckTimer = undefined;
    this.bfd?.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    // Let already computed kernel work finish; with graceful restart nothing is removed.
    this.keepRoutes = graceful;
    await this.drainFib();
  }

  // ---- control surface ----

  announce(prefixes: string[], attrs: Partial<RouteAttrs> = {}): number {
    for (const p of prefixes) this.rib.originate(canonicalPrefix(p), attrs);
    this.schedule();
    return prefixes.length;
  }

  /** The own table is complete (after a restart): End-of-RIB may go out. */
  ready(): void {
    clearTimeout(this.readyTimer);
    if (this.localReady) return;
    this.localReady = true;
    this.deps.log.info({ waiting: this.eorPending.size }, 'own table complete: End-of-RIB follows');
    this.schedule();
  }

  withdraw(prefixes: string[]): number {
    let n = 0;
    for (const p of prefixes) if (this.rib.withdrawOriginated(canonicalPrefix(p))) n++;
    this.schedule();
    return n;
  }

  peers(): PeerView[] {
    return [...this.sessions.values()].map((s) => {
      const st = s.status();
      const stats = this.rib.stats(s.cfg.address);
      return {
        address: st.address,
        asn: st.asn,
        state: st.state,
        since: new Date(st.since).toISOString(),
        uptimeSeconds: Math.round((Date.now() - st.since) / 1000),
        routerId: st.routerId,
        holdTime: st.holdTime,
        ...stats,
        lastError: st.lastError,
        ...(this.bfd?.status(st.address) ? { bfd: this.bfd.status(st.address) } : {}),
      };
    });
  }

  routes(prefix?: string): RouteView[] {
    const dests = prefix ? [this.rib.destination(canonicalPrefix(prefix))].filter((d) => d !== undefined) : [...this.rib.destinations()];
    return dests.map((d) => ({
      prefix: d.prefix,
      best: d.best && {
        peer: d.best.peerId === LOCAL_PEER_ID ? 'local' : d.best.peerId,
        nextHop: d.best.attrs.nextHop || 'self',
        asPath: fmtPath(d.best.attrs.asPath),
        origin: d.best.attrs.origin,
        localPref: d.best.attrs.localPref,
        med: d.best.attrs.med,
        communities: d.best.attrs.communities,
        stale: d.best.stale,
      },
      reason: d.reason,
      paths: d.paths.map((p) => ({ peer: p.peerId === LOCAL_PEER_ID ? 'local' : p.peerId, nextHop: p.attrs.nextHop || 'self', asPath: fmtPath(p.attrs.asPath), stale: p.stale })),
      multipath: d.multipath.map((p) => p.attrs.nextHop),
      ...(this.fibFailed.has(d.prefix) ? { kernelError: this.fibFailed.get(d.prefix) } : {}),
    }));
  }

  stats(): SpeakerStats {
    let routes = 0;
    for (const _ of this.rib.destinations()) routes++;
    return { routes, fibApplied: this.fibApplied, fibPending: this.fibQueue.size + this.rib.fibPending(), fibErrors: this.fibErrors, fibFailed: this.fibFailed.size };
  }

  // ---- session events ----

  /** BFD saw the peer go (RFC 5882 §4.2): the BGP session goes with it, and its routes with that. */
  private onBfd(address: string, up: boolean): void {
    const s = this.sessions.get(address);
    if (!s || up) return;
    // Only a connected session has anything to close; in Connect/Active an MsgErr is an FSM error
    // and would bury the BFD reason under a 5/0.
    const st = s.fsm.state;
    if (st === 'Idle' || st === 'Connect' || st === 'Active') return;
    this.deps.log.warn({ peer: address, state: st }, 'BFD down: closing the BGP session');
    s.fail(NotifyCode.CEASE, CeaseSubcode.BFD_DOWN, 'BFD down');
  }

  private onEstablished(s: Session): void {
    if (this.sessions.get(s.cfg.address) !== s) return; // removed meanwhile
    const n = s.negotiated!;
    const local = s.localAddress();
    const self = local ? (local.includes(':') ? { v6: local } : { v4: local }) : {};
    this.rib.peerUp(s.cfg.address, { routerId: s.conn!.remoteOpen!.routerId, families: n.families, selfNextHop: self });
    this.eorReceived.set(s.cfg.address, new Set());
    this.eorPending.add(s);
    if (this.rib.hasStale(s.cfg.address)) {
      // RFC 4724 §4.2: back without graceful restart, or without the Forwarding State bit for a
      // family: its stale routes go at once, not at End-of-RIB or when the restart timer runs out.
      const gr = n.peerGracefulRestart;
      for (const f of [IPV4_UNICAST, IPV6_UNICAST]) {
        if (gr?.families.get(f) === true) continue;
        const swept = this.rib.sweepStale(s.cfg.address, f);
        if (swept) this.deps.log.info({ peer: s.cfg.address, family: f, routes: swept, gracefulRestart: !!gr }, 'stale routes flushed: the peer did not preserve forwarding state');
      }
      if (this.rib.hasStale(s.cfg.address)) this.armStaleTimer(s, gr?.restartTime ?? 120);
      else clearTimeout(this.staleTimers.get(s.cfg.address));
    }
    this.schedule();
  }

  private onDown(s: Session, reason: string, graceful: boolean): void {
    if (this.sessions.get(s.cfg.address) !== s) return; // removed: removePeer already cleaned up
    this.eorPending.delete(s);
    const n = s.negotiated;
    if (graceful && n?.peerGracefulRestart) {
      // RFC 4724 §4.2 helper: keep the routes, stale, for the peer's restart time.
      this.rib.peerDown(s.cfg.address, { keepStale: n.families });
      this.armStaleTimer(s, n.peerGracefulRestart.restartTime);
    } else this.rib.peerDown(s.cfg.address);
    this.deps.log.info({ peer: s.cfg.address, reason, graceful }, 'session down');
    this.schedule();
  }

  private armStaleTimer(s: Session, seconds: number): void {
    clearTimeout(this.staleTimers.get(s.cfg.address));
    this.staleTimers.set(
      s.cfg.address,
      setTimeout(() => {
        this.staleTimers.delete(s.cfg.address);
        this.rib.sweepStale(s.cfg.address);
        this.schedule();
      }, seconds * 1000),
    );
  }

  private onUpdate(s: Session, ch: UpdateChanges): void {
    if (this.sessions.get(s.cfg.address) !== s) return;
    const id = s.cfg.address;
    if (ch.endOfRib !== undefined) {
      this.eorReceived.get(id)?.add(ch.endOfRib);
      this.rib.sweepStale(id, ch.endOfRib);
      if (!this.rib.hasStale(id)) clearTimeout(this.staleTimers.get(id));
      this.checkConverged();
      this.schedule();
      return;
    }
    for (const f of ch.families) {
      if (!f.attrs || !f.announce.length) continue;
      const why = this.badNextHop(s, f.attrs.nextHop);
      if (!why) continue;
      // RFC 4271 §6.3: log and ignore the route, no NOTIFICATION; what the peer sent before for these prefixes goes too.
      this.deps.log.warn({ peer: id, nextHop: f.attrs.nextHop, why, routes: f.announce.length, first: f.announce[0].prefix }, 'route ignored: semantically incorrect NEXT_HOP');
      f.withdraw.push(...f.announce);
      f.announce = [];
    }
    const r = this.rib.applyUpdate(id, ch.families);
    // A fast peer fills the socket faster than we read it, and one poll phase reads it dry before
    // any setImmediate runs: flush every so many routes, so the first ones reach the kernel early.
    this.unflushed += r.accepted + r.withdrawn;
    if (this.unflushed >= EARLY_FLUSH_ROUTES) this.flushNow();
    if (r.maxPrefixExceeded) {
      s.fail(NotifyCode.CEASE, CeaseSubcode.MAX_PREFIXES, `more than ${this.cfg.peers.find((p) => p.address === id)?.maxPrefix} prefixes`);
    }
    this.schedule();
  }

  /** Why a learned next hop is unusable (RFC 4271 §6.3), or undefined when it is fine. */
  private badNextHop(s: Session, nextHop: string): string | undefined {
    if (isMartianNextHop(nextHop)) return 'not a unicast address';
    if (nextHop === s.localAddress()) return 'our own address';
    const now = Date.now();
    if (!this.localAddrs || now - this.localAddrs.at > LOCAL_ADDRS_TTL_MS) {
      const set = new Set<string>();
      for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) set.add(a.address);
      this.localAddrs = { at: now, set };
    }
    return this.localAddrs.set.has(nextHop) ? 'our own address' : undefined;
  }

  private checkConverged(): void {
    if (this.converged) return;
    for (const s of this.sessions.values()) {
      const got = this.eorReceived.get(s.cfg.address);
      if (!got || !s.negotiated || [...s.negotiated.families].some((f) => !got.has(f))) return;
    }
    this.markConverged();
  }

  private markConverged(): void {
    if (this.converged) return;
    this.converged = true;
    clearTimeout(this.convergeTimer);
    const sink = this.deps.fib;
    if (sink?.converged) {
      // After the re-learned routes are in the kernel, or the sweep takes them out for a moment:
      // the End-of-RIB that got us here arrives before the flush that turns its UPDATEs into FIB changes.
      this.flushNow();
      void this.drainFib().then(() => sink.converged!().catch((e) => this.deps.log.error({ err: messageOf(e) }, 'kernel sweep failed')));
    }
  }

  // ---- flushing ----

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushNow();
    });
  }

  private flushNow(): void {
    this.unflushed = 0;
    const { out } = this.rib.flush();
    for (const [id, o] of out) {
      const s = this.sessions.get(id);
      if (s) this.sendOut(s, o);
    }
    if (this.localReady) {
      for (const s of this.eorPending) s.sendEndOfRib();
      this.eorPending.clear();
    }
    if (!this.deps.fib) this.rib.dropFib();
    else if (this.rib.fibPending()) void this.drainFib();
  }

  private sendOut(s: Session, o: PeerOut): void {
    const opts = s.conn?.send;
    if (!opts) return;
    const announce: PeerOut['announce'] = [];
    const withdraw = [...o.withdraw];
    for (const a of o.announce) {
      const attrs = fitAttrs(a.family, a.attrs, opts);
      if (attrs) {
        announce.push(attrs === a.attrs ? a : { ...a, attrs });
        continue;
      }
      // RFC 8654 §4: no UPDATE this peer accepts can carry these routes: not sent (withdrawn, if it had them before).
      this.deps.log.warn({ peer: s.cfg.address, routes: a.prefixes.length, first: a.prefixes[0], extendedMessage: !!opts.extendedMessage }, 'routes not sent: their attributes do not fit in a message to this peer');
      this.rib.unsent(s.cfg.address, a.prefixes);
      withdraw.push({ family: a.family, prefixes: a.prefixes });
    }
    s.sendUpdates(encodeOut({ announce, withdraw }, opts));
  }

  /**
   * The kernel refused a route. A refused replace leaves the old next hop in
   * place, so the prefix is taken out of the kernel (unless a newer change is
   * already queued), remembered with its errno for `routes` and the metrics,
   * and tried again from the RIB every few seconds.
   */
  private kernelRefused(f: FibFailure): void {
    const why = `errno ${f.errno}`;
    if (this.fibFailed.get(f.prefix) !== why) this.deps.log.error({ prefix: f.prefix, errno: f.errno }, 'kernel refused a route: kept out of the kernel, retried');
    this.fibFailed.set(f.prefix, why);
    this.fibErrors++;
    if (!this.fibQueue.has(f.prefix) && !this.rib.isFibPending(f.prefix)) {
      this.refusedRemovals.add(f.prefix);
      this.fibQueue.set(f.prefix, NO_HOPS);
    }
    this.fibRetryTimer ??= setTimeout(() => {
      this.fibRetryTimer = undefined;
      for (const prefix of this.fibFailed.keys()) {
        if (this.fibQueue.has(prefix) || this.rib.isFibPending(prefix)) continue;
        const d = this.rib.destination(prefix);
        const hops = d ? this.rib.installedHops(prefix) : [];
        if (!hops.length) this.fibFailed.delete(prefix);
        else this.fibQueue.set(prefix, hops);
      }
      void this.drainFib();
    }, FIB_RETRY_MS);
  }

  /** Rewrite the routes whose next hops now resolve through another gateway; then look again later. */
  private async followUnderlay(): Promise<void> {
    try {
      const moved = new Set(await this.deps.fib!.movedNextHops!());
      if (moved.size) {
        let n = 0;
        for (const d of this.rib.destinations()) {
          if (this.fibQueue.has(d.prefix) || this.rib.isFibPending(d.prefix)) continue;
          const hops = this.rib.installedHops(d.prefix);
          if (!hops.some((h) => moved.has(h))) continue;
          this.fibQueue.set(d.prefix, hops);
          n++;
        }
        this.deps.log.info({ nextHops: [...moved], routes: n }, 'next hops moved in the underlay: routes rewritten');
        void this.drainFib();
      }
    } catch (e) {
      this.deps.log.warn({ err: messageOf(e) }, 'next-hop recheck failed');
    }
    if (this.recheckTimer) this.recheckTimer = setTimeout(() => void this.followUnderlay(), NEXT_HOP_RECHECK_MS);
  }

  /** One batch in flight at a time; changes that arrive meanwhile coalesce by prefix. */
  private drainFib(): Promise<void> {
    const sink = this.deps.fib;
    if (!sink) return Promise.resolve();
    if (this.fibRunning) return this.fibRunning;
    const run = async () => {
      while (this.fibQueue.size || this.rib.fibPending()) {
        // At most FIB_STEP routes per batch, the speaker's own work first (it is older than
        // any RIB change for the same prefix): the batch is two lists, no object per route.
        let batch = newFibBatch();
        /** Indexes in the batch of removals after a refusal (their prefixes stay failed). */
        const refused = new Set<number>();
        for (const [prefix, nextHops] of this.fibQueue) {
          if (this.refusedRemovals.delete(prefix)) refused.add(batch.keys.length);
          batch.keys.push(fibKey(prefix));
          batch.nextHops.push(nextHops);
          this.fibQueue.delete(prefix);
          if (batch.keys.length >= FIB_STEP) break;
        }
        if (batch.keys.length < FIB_STEP) this.rib.takeFib(FIB_STEP - batch.keys.length, batch);
        if (this.keepRoutes) batch = this.installsOnly(batch);
        if (!batch.keys.length) continue;
        try {
          const failed = (await sink.apply(batch)) ?? [];
          this.fibApplied += batch.keys.length - failed.length;
          if (this.fibFailed.size) batch.keys.forEach((k, i) => refused.has(i) || this.fibFailed.delete(fibPrefix(k)));
          for (const f of failed) this.kernelRefused(f);
        } catch (e) {
          this.fibErrors++;
          this.deps.log.error({ err: messageOf(e), routes: batch.keys.length }, 'kernel update failed');
        }
      }
    };
    this.fibRunning = run().finally(() => (this.fibRunning = undefined));
    return this.fibRunning;
  }

  /** Stopping with graceful restart: the batch without its removals. */
  private installsOnly(b: FibBatch): FibBatch {
    const out = newFibBatch();
    b.keys.forEach((k, i) => {
      if (!b.nextHops[i].length) return;
      out.keys.push(k);
      out.nextHops.push(b.nextHops[i]);
    });
    return out;
  }
}

