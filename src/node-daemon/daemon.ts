/**
 * The node daemon (composition root). It registers the node, keeps a
 * blackhole route per owned block, serves the warm CNI fast path and
 * health/metrics, runs the BGP mesh and keeps the ACL rules in sync. The
 * overlay reconcilers attach here next.
 */
import * as http from 'node:http';
import type { Logger } from '../lib/log';
import { handle } from '../cni-plugin/main';
import { CniServer } from './cni-server';
import type { DaemonConfig } from './config';
import { Metrics } from './metrics';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore } from '../datastore';
import type { Store } from '../datastore/types';
import { resolveNodeName } from '../ipam/nodename';
import { BlockRouteReconciler } from './block-routes';
import { detectAddresses, nodeKey, registerNode, type NodeRecord } from './registry';
import { BgpMesh } from './bgp-mesh';
import type { PeerView } from '../bgp-speaker';
import { AclReconciler, type AclStatus } from './acl-sync';
import { loadIpamState, reclaimEmptyBlocks, utilisation } from '../ipam/gc';
import { TernError } from '../lib/errors';
import { VxlanDriver, type OverlayStatus } from './vxlan';
import type { LoopStatus } from '../lib/reconcile-loop';

export interface DaemonStatus {
  node: string;
  ready: boolean;
  datastore: { type: string; where: string; reachable: boolean };
  blocks: string[];
  bgp?: { asn: number; routerId: string; peers: PeerView[] };
  acl?: AclStatus;
  overlay?: OverlayStatus;
  /** Every reconcile loop: runs, failures, last error, next run. */
  reconcilers?: LoopStatus[];
}

/** What keeps a node from being ready (empty: ready): started, datastore reachable, ACL in sync, every BGP session up. */
export function notReady(st: DaemonStatus): string[] {
  const why: string[] = [];
  if (!st.ready) why.push('starting');
  if (!st.datastore.reachable) why.push('datastore unreachable');
  if (st.acl?.lastError) why.push(`ACL sync failed: ${st.acl.lastError}`);
  if (st.overlay?.lastError) why.push(`overlay failed: ${st.overlay.lastError}`);
  for (const p of st.bgp?.peers ?? []) if (p.state !== 'Established') why.push(`BGP ${p.address} ${p.state}`);
  return why;
}

export class NodeDaemon {
  readonly metrics = new Metrics();
  private cni?: CniServer;
  private http?: http.Server;
  private ready = false;
  private store?: Store;
  private blocks?: BlockRouteReconciler;
  private acl?: AclReconciler;
  private reclaimTimer?: NodeJS.Timeout;
  private vxlan?: VxlanDriver;
  private reclaiming?: Promise<void>;
  bgp?: BgpMesh;
  node = '';

  constructor(private readonly config: DaemonConfig, private readonly log: Logger) {}

  async start(): Promise<void> {
    this.node = resolveNodeName({ nodename: this.config.nodename });
    fs.mkdirSync(path.dirname(this.config.nodenameFile), { recursive: true });
    fs.writeFileSync(this.config.nodenameFile, `${this.node}\n`);
    this.store = openStore(this.config.datastore);
    const addresses = this.config.addresses.length ? this.config.addresses : await detectAddresses();
    const record = { name: this.node, addresses, asn: this.config.asn, labels: this.config.labels, updated: new Date().toISOString() };
    // A restarting VXLAN node keeps its published VTEP, so the others never drop their entries for it.
    const prev = this.config.vxlan ? await this.store.get(nodeKey(this.node)) : undefined;
    const vtep = prev ? (JSON.parse(prev.value) as NodeRecord).vtep : undefined;
    await registerNode(this.store, vtep ? { ...record, vtep } : record);
    if (this.config.bgp) {
      const routerId = (addresses.find((a) => !a.includes(':')) ?? '0.0.0.1').split('/')[0];
      this.bgp = new BgpMesh({ store: this.store, node: this.node, routerId, settings: this.config.bgp, labels: this.config.labels, log: this.log });
    }
    this.blocks = new BlockRouteReconciler({
      store: this.store,
      node: this.node,
      log: this.log.child({ component: 'routes' }),
      onChange: (blocks) => this.bgp?.setBlocks(blocks),
    });
    await this.blocks.start();
    // Sessions only after the blocks are originated: a restarted node's first table and End-of-RIB
    // must hold them, or its graceful-restart helpers sweep its routes as stale (RFC 4724 §4.2).
    await this.bgp?.start();
    if (this.config.vxlan) {
      const underlay = addresses.find((a) => !a.includes(':')) ?? addresses[0];
      if (!underlay) throw new TernError('INVALID_CONFIG', 'vxlan needs an underlay address: set "addresses" or give the node a default route');
      const store = this.store;
      this.vxlan = new VxlanDriver({
        store,
        node: this.node,
        underlay,
        labels: this.config.labels,
        settings: this.config.vxlan,
        publish: (vtep) => registerNode(store, { ...record, vtep, updated: new Date().toISOString() }),
        log: this.log.child({ component: 'overlay' }),
      });
      await this.vxlan.start();
    }
    this.acl = new AclReconciler({
      store: this.store,
      log: this.log.child({ component: 'acl' }),
      policyDir: this.config.policyDir,
      onSync: (ok, ms) => {
        this.metrics.observe('tern_acl_sync_duration_seconds', 'ACL compile and apply time', {}, ms / 1000);
        this.metrics.inc('tern_acl_syncs_total', 'ACL syncs', { result: ok ? 'ok' : 'error' });
      },
    });
    await this.acl.start();
    const acl = this.acl;
    const cniLog = this.log.child({ component: 'cni' });
    this.cni = new CniServer({
      socketPath: this.config.cniSocket,
      log: cniLog,
      handle: (env, stdin) => handle(env, stdin, cniLog, { aclProgrammed: () => acl.programmed }),
      observe: (command, ms, ok) => {
        this.metrics.observe('tern_cni_request_duration_seconds', 'CNI request latency', { command }, ms / 1000);
        this.metrics.inc('tern_cni_requests_total', 'CNI requests', { command, result: ok ? 'ok' : 'error' });
      },
    });
    await this.cni.start();
    if (this.config.healthListen) await this.startHttp(this.config.healthListen);
    if (this.config.ipam.reclaimInterval > 0) {
      this.reclaimTimer = setInterval(() => void this.reclaim(), this.config.ipam.reclaimInterval * 1000);
      this.reclaimTimer.unref();
    }
    this.ready = true;
    this.log.info({ node: this.node }, 'node daemon started');
  }

  /** Give this node's long-empty blocks back to their pools (the block reconciler then drops their routes). */
  private reclaim(): Promise<void> {
    if (this.reclaiming || !this.store) return this.reclaiming ?? Promise.resolve();
    const store = this.store;
    this.reclaiming = (async () => {
      try {
        const r = await reclaimEmptyBlocks(store, Date.now(), this.config.ipam.emptyBlockGrace * 1000, this.node);
        const blocks = r.repaired.map((f) => (f as { block: string }).block);
        if (blocks.length) {
          this.log.info({ blocks }, 'empty blocks returned to their pools');
          this.metrics.inc('tern_ipam_blocks_reclaimed_total', 'Empty blocks returned to their pools', {}, blocks.length);
        }
      } catch (e) {
        this.log.warn({ err: e }, 'reclaiming empty blocks failed; next round retries');
      } finally {
        this.reclaiming = undefined;
      }
    })();
    return this.reclaiming;
  }

  private async startHttp(listen: string): Promise<void> {
    const i = listen.lastIndexOf(':');
    const host = listen.slice(0, i);
    const port = Number(listen.slice(i + 1));
    const server = http.createServer((req, res) => {
      const send = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
        res.writeHead(code, { 'content-type': type });
        res.end(body);
      };
      if (req.url === '/healthz') return send(200, 'ok\n');
      if (req.url === '/readyz') {
        void this.status().then((st) => {
          const why = notReady(st);
          send(why.length ? 503 : 200, why.length ? `not ready: ${why.join('; ')}\n` : 'ready\n');
        });
        return;
      }
      if (req.url === '/metrics') {
        void this.snapshotMetrics().then(() => send(200, this.metrics.render(), 'text/plain; version=0.0.4'));
        return;
      }
      if (req.url === '/status') {
        void this.status().then((st) => send(200, JSON.stringify(st), 'application/json'));
        return;
      }
      send(404, 'not found\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.http = server;
  }

  /** State gauges, taken at scrape time: BGP sessions and routes, this node's IPAM use. */
  private async snapshotMetrics(): Promise<void> {
    for (const l of this.loops()) {
      this.metrics.set('tern_reconcile_runs', 'Runs of each reconcile loop', { loop: l.name }, l.runs);
      this.metrics.set('tern_reconcile_failures', 'Failed runs of each reconcile loop', { loop: l.name }, l.failures);
      this.metrics.set('tern_reconcile_consecutive_failures', 'Failures since the last success (0: in sync)', { loop: l.name }, l.consecutiveFailures);
      this.metrics.set('tern_reconcile_last_duration_seconds', 'Duration of the last run', { loop: l.name }, (l.lastDurationMs ?? 0) / 1000);
    }
    if (this.bgp) {
      const peers = this.bgp.speaker.peers();
      this.metrics.replaceGauge('tern_bgp_session_up', 'BGP session state per peer (1 when Established)', peers.map((p) => ({ labels: { peer: p.address, state: p.state }, value: p.state === 'Established' ? 1 : 0 })));
      const st = this.bgp.speaker.stats();
      this.metrics.set('tern_bgp_routes', 'Prefixes in the Loc-RIB', {}, st.routes);
      this.metrics.set('tern_bgp_fib_errors', 'Kernel route writes that failed', {}, st.fibErrors);
    }
    if (this.store) {
      try {
        const row = utilisation(await loadIpamState(this.store)).nodes.find((n) => n.node === this.node);
        this.metrics.set('tern_ipam_node_blocks', 'IPAM blocks affine to this node', {}, row?.blocks ?? 0);
        this.metrics.set('tern_ipam_node_addresses_used', 'Addresses in use in this node\'s blocks', {}, row?.used ?? 0);
        this.metrics.set('tern_ipam_node_addresses_capacity', 'Addresses in this node\'s blocks', {}, row?.capacity ?? 0);
      } catch (e) {
        this.log.warn({ err: e }, 'IPAM metrics unavailable');
      }
    }
  }

  /** What `ternctl status` shows: node, datastore reachability, owned blocks, BGP sessions. */
  async status(): Promise<DaemonStatus> {
    let reachable = false;
    try {
      await this.store?.revision();
      reachable = true;
    } catch {
      reachable = false;
    }
    const ds = this.config.datastore;
    return {
      node: this.node,
      ready: this.ready,
      datastore: { type: ds.type, where: ds.type === 'sqlite' ? ds.path : ds.endpoints.join(','), reachable },
      blocks: this.blocks?.blocks ?? [],
      bgp: this.bgp ? { asn: this.bgp.speaker.cfg.asn, routerId: this.bgp.speaker.cfg.routerId, peers: this.bgp.speaker.peers() } : undefined,
      acl: this.acl?.state,
      overlay: this.vxlan?.state,
      reconcilers: this.loops(),
    };
  }

  private loops(): LoopStatus[] {
    return [this.blocks?.loop, this.acl?.loop, this.vxlan?.loop].filter((l) => !!l).map((l) => l.status);
  }

  async stop(): Promise<void> {
    this.ready = false;
    clearInterval(this.reclaimTimer);
    await this.reclaiming;
    await this.cni?.stop();
    await this.blocks?.stop();
    await this.acl?.stop();
    await this.vxlan?.stop();
    await this.bgp?.stop();
    await this.store?.close();
    if (this.http) await new Promise<void>((r) => this.http!.close(() => r()));
    this.log.info('node daemon stopped');
  }
}
