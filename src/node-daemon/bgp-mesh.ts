/**
 * Calico-style routing from the daemon: a BGP speaker that advertises the
 * blocks this node owns and peers with every other registered node (full
 * mesh) plus any explicit peers, installing what it learns into the kernel.
 * The peer set follows the node registry: a node that joins is added, one
 * that leaves is removed and its routes withdrawn.
 */
import type { Logger } from '../lib/log';
import type { Store, Watcher } from '../datastore/types';
import { Speaker, type PeerSpec } from '../bgp-speaker';
import { KernelFib } from '../bgp-speaker/fib';
import { warmUp } from '../bgp-speaker/warmup';
import { bgpSocketOptions } from '../dataplane';
import { NODES, listNodes, type NodeRecord } from './registry';
import { POOLS, poolCommunities, type IPPool } from '../ipam/model';
import { parsePrefix, prefixContainsPrefix } from '../lib/cidr';
import { BGP_RESOURCES, listBgpResources, nodeAs, selects, type BgpConfigResource, type BgpPeerResource } from './bgp-resources';
import * as fs from 'node:fs';
import { messageOf } from '../lib/errors';

export interface BgpSettings {
  asn: number;
  routerId?: string;
  /** Peer with every other registered node. */
  mesh: boolean;
  /**
   * Route reflectors instead of the full mesh (Calico's topology for large
   * clusters): nodes carrying the `selector` label reflect, every other node
   * peers with the reflectors only. Reflectors peer with each other as
   * ordinary iBGP peers and share one cluster ID.
   */
  reflectors?: { selector: string; clusterId?: string };
  peers: PeerSpec[];
  port: number;
  holdTime?: number;
  /** RFC 4724 restart time (s); 0 turns graceful restart off. */
  restartTime: number;
  /** Accept only prefixes inside these (e.g. the IP pools); empty accepts what mesh peers send. */
  importPools: string[];
}

const hostOf = (cidr: string): string => cidr.split('/')[0];

/** Peers wanted now: every other node's first address of the family we peer on, plus the explicit ones. */
export function isReflector(n: Pick<NodeRecord, 'labels'>, s: BgpSettings): boolean {
  if (!s.reflectors) return false;
  const [k, v] = s.reflectors.selector.split('=');
  return n.labels[k] === v;
}

/** Cluster-wide resources from the datastore; `secret` reads a password file on this node. */
export interface BgpResources {
  peers: BgpPeerResource[];
  config?: BgpConfigResource;
  secret?: (file: string) => string;
}

const firstV4 = (n: NodeRecord) => {
  const a = n.addresses.find((x) => !x.includes(':')) ?? n.addresses[0];
  return a ? hostOf(a) : undefined;
};

/** The AS a node runs with: BGPConfiguration's label or default, else its own setting. */
export function asOf(n: Pick<NodeRecord, 'labels' | 'asn'> | undefined, s: BgpSettings, res?: BgpResources): number {
  return nodeAs(n?.labels ?? {}, res?.config, n?.asn ?? s.asn);
}

export function desiredPeers(self: string, nodes: NodeRecord[], s: BgpSettings, res: BgpResources = { peers: [] }): PeerSpec[] {
  const out = new Map<string, PeerSpec>();
  const me = nodes.find((n) => n.name === self);
  const iReflect = !!me && isReflector(me, s);
  const pools = s.importPools.length ? s.importPools.map((p) => `${p} le ${p.includes(':') ? 128 : 32}`) : undefined;
  if (res.config?.nodeToNodeMesh ?? (s.mesh || s.reflectors)) {
    for (const n of nodes) {
      if (n.name === self) continue;
      // With reflectors: a client peers with reflectors only; a reflector with everyone, its clients marked.
      const theyReflect = isReflector(n, s);
      if (s.reflectors && !iReflect && !theyReflect) continue;
      const addr = n.addresses.find((a) => !a.includes(':')) ?? n.addresses[0];
      if (!addr) continue;
      out.set(hostOf(addr), {
        address: hostOf(addr),
        asn: asOf(n, s, res),
        port: s.port,
        holdTime: s.holdTime,
        importPrefixes: pools,
        ...(iReflect && !theyReflect ? { routeReflectorClient: true } : {}),
      });
    }
  }
  // BGPPeer resources whose nodeSelector picks this node: one address, or every node their peerSelector picks.
  const myAs = asOf(me, s, res);
  for (const r of res.peers) {
    if (!selects(r.nodeSelector, me?.labels ?? {})) continue;
    const targets = r.peerIP
      ? [{ address: r.peerIP, asn: r.asNumber ?? myAs }]
      : nodes.filter((n) => n.name !== self && selects(r.peerSelector, n.labels)).flatMap((n) => (firstV4(n) ? [{ address: firstV4(n)!, asn: r.asNumber ?? asOf(n, s, res) }] : []));
    let password: string | undefined;
    if (r.passwordFile) {
      if (!res.secret) continue;
      password = res.secret(r.passwordFile);
    }
    for (const t of targets) {
      const spec: PeerSpec = { ...t, port: s.port, holdTime: s.holdTime, importPrefixes: r.importPrefixes ?? pools, exportPrefixes: r.exportPrefixes ?? pools };
      if (r.passive) spec.passive = true;
      if (r.multihop) spec.multihop = r.multihop;
      if (r.ttlSecurity) spec.ttlSecurity = r.ttlSecurity;
      if (r.bfd) spec.bfd = r.bfd;
      if (r.keepOriginalNextHop) spec.keepNextHop = true;
      if (password) spec.password = password;
      out.set(t.address, spec);
    }
  }
  for (const p of s.peers) out.set(p.address, { port: s.port, ...p });
  return [...out.values()].sort((a, b) => a.address.localeCompare(b.address));
}

/**
 * What a block is advertised with: its pool's communities (none when no pool
 * holds it), plus those of every BGPConfiguration prefixAdvertisement holding it.
 */
export function blockAttrs(block: string, pools: IPPool[], ads: BgpConfigResource['prefixAdvertisements'] = []): ReturnType<typeof poolCommunities> {
  const b = parsePrefix(block);
  const holds = (cidr: string) => {
    const pp = parsePrefix(cidr);
    return pp.family === b.family && prefixContainsPrefix(pp, b);
  };
  const pool = pools.find((p) => holds(p.cidr));
  const extra = ads.filter((a) => holds(a.cidr)).flatMap((a) => a.communities);
  if (!extra.length) return pool ? poolCommunities(pool) : {};
  return poolCommunities({ communities: [...new Set([...(pool?.communities ?? []), ...extra])] });
}

export class BgpMesh {
  /** Replaced when this node's AS or listen port changes (a BGPConfiguration or a label moved it). */
  speaker: Speaker;
  private readonly fib: KernelFib;
  private watcher?: Watcher;
  /** Block -> the attributes it was announced with (JSON), so a pool change re-announces only what changed. */
  private announced = new Map<string, string>();
  private blocks: string[] = [];
  private pools: IPPool[] = [];
  private poolWatcher?: Watcher;
  /** The spec each peer was added with. */
  private readonly peerSpecs = new Map<string, string>();

  private resourceWatcher?: Watcher;
  /** BGPConfiguration's prefixAdvertisements, as last read. */
  private prefixAds: BgpConfigResource['prefixAdvertisements'] = [];
  private syncing = Promise.resolve();

  constructor(
    private readonly deps: { store: Store; node: string; routerId: string; settings: BgpSettings; labels: Record<string, string>; log: Logger },
  ) {
    this.fib = new KernelFib(deps.log.child({ component: 'fib' }));
    this.speaker = this.makeSpeaker(deps.settings.asn, deps.settings.port);
  }

  private makeSpeaker(asn: number, port: number): Speaker {
    const { deps } = this;
    const s = deps.settings;
    return new Speaker(
      {
        asn,
        routerId: s.routerId ?? deps.routerId,
        listen: { port },
        peers: [],
        families: ['ipv4', 'ipv6'],
        holdTime: s.holdTime,
        connectRetryTime: 5,
        idleHoldTime: 1,
        gracefulRestart: s.restartTime > 0 ? { restartTime: s.restartTime } : undefined,
        installIntoKernel: true,
        // Only reflectors carry the cluster ID: a client that checked CLUSTER_LIST against it would drop every reflected route.
        clusterId: isReflector({ labels: deps.labels }, s) ? s.reflectors?.clusterId : undefined,
      },
      { log: deps.log.child({ component: 'bgp' }), fib: this.fib, sockopts: bgpSocketOptions() },
    );
  }

  async start(): Promise<void> {
    await this.fib.start();
    const [{ revision }, res] = await Promise.all([this.deps.store.list(NODES), listBgpResources(this.deps.store)]);
    // Start with the AS and port the datastore says, so a node does not come up once with the wrong AS.
    const nodes = await listNodes(this.deps.store);
    const me = nodes.find((n) => n.name === this.deps.node);
    const asn = asOf(me ?? { labels: this.deps.labels }, this.deps.settings, res);
    const port = res.config?.listenPort ?? this.deps.settings.port;
    if (asn !== this.speaker.cfg.asn || port !== this.deps.settings.port) this.speaker = this.makeSpeaker(asn, port);
    // As `ternctl bgp serve` does: a first full table then meets compiled code (bgp-speaker/warmup.ts).
    // Warmed for the peer that sends one, as the datastore describes it now: an eBGP peer (the
    // fabric's routers) before a mesh peer, which only sends blocks.
    const peers = desiredPeers(this.deps.node, nodes, this.deps.settings, res);
    const sample = peers.find((p) => p.asn !== asn) ?? peers[0];
    await warmUp({ config: { ...this.speaker.cfg, peers: sample ? [sample] : [] }, kernel: (b) => this.fib.rehearse(b) });
    await this.speaker.start();
    await this.syncPeers();
    const sync = () => void this.syncPeers();
    this.watcher = await this.deps.store.watch(NODES, revision, sync, (e) => this.deps.log.warn({ err: e }, 'node watch failed'));
    // BGPPeer and BGPConfiguration resources: picked up live, no restart.
    this.resourceWatcher = await this.deps.store.watch(BGP_RESOURCES, res.revision, sync, (e) => this.deps.log.warn({ err: e }, 'BGP resource watch failed'));
    const pools = await this.deps.store.list(POOLS);
    this.pools = pools.items.map((kv) => JSON.parse(kv.value) as IPPool);
    this.poolWatcher = await this.deps.store.watch(POOLS, pools.revision, () => void this.reloadPools(), (e) => this.deps.log.warn({ err: e }, 'pool watch failed'));
    this.announce();
  }

  private async reloadPools(): Promise<void> {
    try {
      this.pools = (await this.deps.store.list(POOLS)).items.map((kv) => JSON.parse(kv.value) as IPPool);
      this.announce();
    } catch (e) {
      this.deps.log.error({ err: e }, 'pool reload failed');
    }
  }

  /** Serialized: a burst of watch events is one sync after another, never two at once. */
  private syncPeers(): Promise<void> {
    this.syncing = this.syncing.then(() => this.syncOnce());
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    try {
      const [nodes, res] = await Promise.all([listNodes(this.deps.store), listBgpResources(this.deps.store)]);
      const me = nodes.find((n) => n.name === this.deps.node);
      const asn = asOf(me ?? { labels: this.deps.labels }, this.deps.settings, res);
      const port = res.config?.listenPort ?? this.deps.settings.port;
      if (asn !== this.speaker.cfg.asn || port !== ((this.speaker.cfg.listen || {}).port ?? 179)) await this.rebuild(asn, port);
      const ads = res.config?.prefixAdvertisements ?? [];
      if (JSON.stringify(ads) !== JSON.stringify(this.prefixAds)) {
        this.prefixAds = ads;
        this.announce(); // only blocks whose communities changed are announced again
      }
      const want = desiredPeers(this.deps.node, nodes, this.deps.settings, { ...res, secret: (f) => fs.readFileSync(f, 'utf8').trim() });
      const keep = new Map(want.map((p) => [p.address, JSON.stringify(p)]));
      // Gone, or changed (a node became or stopped being a reflector): the session starts over.
      for (const [a, spec] of this.peerSpecs) {
        if (keep.get(a) === spec) continue;
        this.speaker.removePeer(a);
        this.peerSpecs.delete(a);
      }
      for (const p of want) {
        if (this.peerSpecs.has(p.address)) continue;
        this.speaker.addPeer(p);
        this.peerSpecs.set(p.address, keep.get(p.address)!);
      }
    } catch (e) {
      this.deps.log.error({ err: messageOf(e) }, 'peer sync failed');
    }
  }

  /**
   * A new AS (or port) means new sessions: every peer is told Cease and
   * forgets our routes, then a speaker with the new AS starts over and
   * announces the same blocks.
   */
  private async rebuild(asn: number, port: number): Promise<void> {
    this.deps.log.info({ from: this.speaker.cfg.asn, to: asn, port }, 'BGP AS or port changed: restarting the speaker');
    for (const a of this.speaker.peerAddresses()) this.speaker.removePeer(a);
    this.peerSpecs.clear();
    await this.speaker.stop();
    this.speaker = this.makeSpeaker(asn, port);
    await this.speaker.start();
    this.announced.clear();
    this.announce();
  }

  /** Advertise exactly these blocks (the node's own, as aggregates). */
  setBlocks(blocks: string[]): void {
    this.blocks = blocks;
    this.announce();
  }

  /** Originate exactly the node's blocks, each with its pool's communities. */
  private announce(): void {
    const want = new Map(this.blocks.map((b) => [b, blockAttrs(b, this.pools, this.prefixAds)] as const));
    for (const [b, attrs] of want) {
      const key = JSON.stringify(attrs);
      if (this.announced.get(b) === key) continue;
      this.speaker.announce([b], attrs);
      this.announced.set(b, key);
    }
    const drop = [...this.announced.keys()].filter((b) => !want.has(b));
    if (drop.length) this.speaker.withdraw(drop);
    for (const b of drop) this.announced.delete(b);
  }

  async stop(): Promise<void> {
    await this.watcher?.close();
    await this.resourceWatcher?.close();
    await this.poolWatcher?.close();
    await this.speaker.stop();
  }
}
