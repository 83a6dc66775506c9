/**
 * The daemon's VXLAN side: when some IP pool is in vxlan or
 * vxlan-crosssubnet mode, take a tunnel address from that pool (an IPAM
 * handle of this node, so it survives restarts), publish this node's VTEP
 * (MAC, underlay address, tunnel address, subnet) in its registry record, and
 * keep the VTEP, FDB, neighbor and route entries toward every other
 * published node equal to the registry and the block affinities. The kernel
 * side is the overlay module's VxlanReconciler (plan, diff, apply).
 */
import type { Logger } from '../lib/log';
import { TernError, messageOf } from '../lib/errors';
import { ReconcileLoop } from '../lib/reconcile-loop';
import type { Store, Watcher } from '../datastore/types';
import { AFFINITY, POOLS, type IPPool } from '../ipam/model';
import { BlockIpam } from '../ipam/block-ipam';
import { VxlanReconciler, vtepMacFor, type OverlayMode, type RemoteNode } from '../overlay';
import { networkOf } from '../overlay/addr';
import { ownBlocks } from './block-routes';
import { NODES, listNodes, type NodeRecord, type VtepRecord } from './registry';

export interface VxlanSettings {
  vni?: number;
  port?: number;
}

export interface OverlayStatus {
  mode: OverlayMode;
  vtep?: VtepRecord;
  remotes: number;
  lastError?: string;
}

/** The VXLAN mode the pools ask for: crosssubnet if any enabled pool says so, else vxlan, else none. */
export function vxlanModeOf(pools: IPPool[]): OverlayMode | undefined {
  const live = pools.filter((p) => !p.disabled);
  if (live.some((p) => p.mode === 'vxlan-crosssubnet')) return 'vxlan-crosssubnet';
  if (live.some((p) => p.mode === 'vxlan')) return 'vxlan';
  return undefined;
}

/** Every other node that published a VTEP, with the blocks affine to it (pure). */
export function remotesOf(self: string, nodes: NodeRecord[], affinities: { key: string; value: string }[]): RemoteNode[] {
  return nodes
    .filter((n) => n.name !== self && n.vtep)
    .map((n) => ({ name: n.name, underlayIp: n.vtep!.underlayIp, vtepMac: n.vtep!.mac, tunnelIp: n.vtep!.tunnelIp, subnet: n.vtep!.subnet, blocks: ownBlocks(affinities, n.name) }));
}

const TUNNEL_KEY = (node: string) => ({ network: 'tern-vxlan', containerId: node, ifname: 'vtep' });

export class VxlanDriver {
  private readonly watchers: Watcher[] = [];
  private reconciler?: VxlanReconciler;
  readonly state: OverlayStatus = { mode: 'routed', remotes: 0 };
  /** Registry, affinities and pools -> kernel; a failed write is retried with backoff, no datastore change needed. */
  readonly loop: ReconcileLoop;

  constructor(
    private readonly deps: {
      store: Store;
      node: string;
      /** This node's underlay address with prefix length (the VTEP binds to it). */
      underlay: string;
      labels: Record<string, string>;
      settings: VxlanSettings;
      /** Write the node's registry record again with this VTEP. */
      publish: (vtep: VtepRecord) => Promise<void>;
      log: Logger;
    },
  ) {
    this.loop = new ReconcileLoop({ name: 'vxlan', log: deps.log, run: () => this.reconcileOnce() });
  }

  async start(): Promise<void> {
    const rev = await this.deps.store.revision();
    await this.loop.runNow();
    for (const prefix of [NODES, AFFINITY, POOLS]) {
      this.watchers.push(await this.deps.store.watch(prefix, rev, () => this.loop.kick(), (e) => this.deps.log.warn({ err: e, prefix }, 'overlay watch failed')));
    }
  }

  /** Reconcile now and wait; errors are kept for status (the loop retries them). */
  async reconcile(): Promise<void> {
    await this.loop.runNow();
  }

  /** Registry and pools -> kernel. Errors are kept for status and retried by the loop with backoff. */
  private async reconcileOnce(): Promise<void> {
    try {
      const pools = (await this.deps.store.list(POOLS)).items.map((kv) => JSON.parse(kv.value) as IPPool);
      const mode = vxlanModeOf(pools);
      if (!mode) {
        this.state.mode = 'routed';
        return; // no overlay wanted; whatever a previous run built stays until a pool asks again
      }
      const vtep = this.state.vtep ?? (await this.ensureVtep(pools));
      const [nodes, affinities] = await Promise.all([listNodes(this.deps.store), this.deps.store.list(AFFINITY)]);
      const remotes = remotesOf(this.deps.node, nodes, affinities.items);
      this.reconciler ??= new VxlanReconciler({});
      const r = await this.reconciler.reconcile({
        self: { name: this.deps.node, underlayIp: vtep.underlayIp, vtepMac: vtep.mac, tunnelIp: vtep.tunnelIp, subnet: vtep.subnet },
        remotes,
        mode,
        vni: this.deps.settings.vni,
        port: this.deps.settings.port,
      });
      if (r.ops.length) this.deps.log.info({ ops: r.ops.length, remotes: remotes.length, mode }, 'overlay in sync');
      Object.assign(this.state, { mode, remotes: remotes.length, lastError: undefined });
    } catch (e) {
      this.state.lastError = messageOf(e);
      throw e;
    }
  }

  /** The tunnel address (an IPAM handle of this node, reused across restarts) and the published VTEP. */
  private async ensureVtep(pools: IPPool[]): Promise<VtepRecord> {
    const ipam = new BlockIpam({ store: this.deps.store, node: this.deps.node, nodeLabels: this.deps.labels });
    const underlayIp = this.deps.underlay.split('/')[0];
    const v6 = underlayIp.includes(':');
    const pool = pools.find((p) => !p.disabled && p.mode.startsWith('vxlan') && p.cidr.includes(':') === v6);
    if (!pool) throw new TernError('NOT_FOUND', `no enabled vxlan pool of the underlay's family (IPv${v6 ? 6 : 4})`);
    const have = await ipam.get(TUNNEL_KEY(this.deps.node));
    const ip = have?.ips[0] ?? (await ipam.allocate({ key: TUNNEL_KEY(this.deps.node), pools: [pool.cidr], attrs: { node: this.deps.node } }))[0];
    const vtep: VtepRecord = { mac: vtepMacFor(this.deps.node), underlayIp, tunnelIp: ip.address, subnet: networkOf(this.deps.underlay) };
    await this.deps.publish(vtep);
    this.state.vtep = vtep;
    this.deps.log.info({ vtep }, 'VTEP published');
    return vtep;
  }

  /** Leaves the kernel as it is (a restart costs no packet). */
  async stop(): Promise<void> {
    for (const w of this.watchers) await w.close();
    await this.loop.stop();
    this.reconciler?.close();
  }
}
