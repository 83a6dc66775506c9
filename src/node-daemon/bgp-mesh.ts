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
import { bgpSocketOptions } from '../dataplane';
import { NODES, listNodes, type NodeRecord } from './registry';
import { POOLS, poolCommunities, type IPPool } from '../ipam/model';
import { parsePrefix, prefixContainsPrefix } from '../lib/cidr';

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

export function desiredPeers(self: string, nodes: NodeRecord[], s: BgpSettings): PeerSpec[] {
  const out = new Map<string, PeerSpec>();
  const me = nodes.find((n) => n.name === self);
  const iReflect = !!me && isReflector(me, s);
  if (s.mesh || s.reflectors) {
    for (const n of nodes) {
      if (n.name === self) continue;
      // With reflectors: a client peers with reflectors only; a reflector with everyone, its clients marked.
      const theyReflect = isReflector(n, s);
      if (s.reflectors && !iReflect && !theyReflect) continue;
      const addr = n.addresses.find((a) => !a.includes(':')) ?? n.addresses[0];
      if (!addr) continue;
      out.set(hostOf(addr), {
        address: hostOf(addr),
        asn: n.asn ?? s.asn,
        port: s.port,
        holdTime: s.holdTime,
        importPrefixes: s.importPools.length ? s.importPools.map((p) => `${p} le ${p.includes(':') ? 128 : 32}`) : undefined,
        ...(iReflect && !theyReflect ? { routeReflectorClient: true } : {}),
      });
    }
  }
  for (const p of s.peers) out.set(p.address, { port: s.port, ...p });
  return [...out.values()].sort((a, b) => a.address.localeCompare(b.address));
}

/** What a block is advertised with: its pool's communities (none when no pool holds it). */
export function blockAttrs(block: string, pools: IPPool[]): ReturnType<typeof poolCommunities> {
  const b = parsePrefix(block);
  const pool = pools.find((p) => {
    const pp = parsePrefix(p.cidr);
    return pp.family === b.family && prefixContainsPrefix(pp, b);
  });
  return pool ? poolCommunities(pool) : {};
}

export class BgpMesh {
  readonly speaker: Speaker;
  private readonly fib: KernelFib;
  private watcher?: Watcher;
  /** Block -> the attributes it was announced with (JSON), so a pool change re-announces only what changed. */
  private announced = new Map<string, string>();
  private blocks: string[] = [];
  private pools: IPPool[] = [];
  private poolWatcher?: Watcher;
  /** The spec each peer was added with. */
  private readonly peerSpecs = new Map<string, string>();

  constructor(
    private readonly deps: { store: Store; node: string; routerId: string; settings: BgpSettings; labels: Record<string, string>; log: Logger },
  ) {
    const s = deps.settings;
    this.fib = new KernelFib(deps.log.child({ component: 'fib' }));
    this.speaker = new Speaker(
      {
        asn: s.asn,
        routerId: s.routerId ?? deps.routerId,
        listen: { port: s.port },
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
    await this.speaker.start();
    const { revision } = await this.deps.store.list(NODES);
    await this.syncPeers();
    this.watcher = await this.deps.store.watch(NODES, revision, () => void this.syncPeers(), (e) => this.deps.log.warn({ err: e }, 'node watch failed'));
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

  private async syncPeers(): Promise<void> {
    try {
      const want = desiredPeers(this.deps.node, await listNodes(this.deps.store), this.deps.settings);
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
      this.deps.log.error({ err: e }, 'peer sync failed');
    }
  }

  /** Advertise exactly these blocks (the node's own, as aggregates). */
  setBlocks(blocks: string[]): void {
    this.blocks = blocks;
    this.announce();
  }

  /** Originate exactly the node's blocks, each with its pool's communities. */
  private announce(): void {
    const want = new Map(this.blocks.map((b) => [b, blockAttrs(b, this.pools)] as const));
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
    await this.poolWatcher?.close();
    await this.speaker.stop();
  }
}
