/**
 * The node daemon (composition root). It registers the node, keeps a
 * blackhole route per owned block, serves the warm CNI fast path and
 * health/metrics, runs the BGP mesh or the VXLAN overlay and keeps the ACL
 * rules in sync.
 */
import * as http from 'node:http';
import type * as net from 'node:net';
import type { Logger } from '../lib/log';
import { handle } from '../cni-plugin/handle';
import { CniServer, checkSocketPath } from './cni-server';
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
import { serveControl } from '../bgp-speaker/control';
import { AclReconciler } from './acl-sync';
import { alignVethGroups } from '../dataplane';
import { LinkDeleter } from '../dataplane/link-deleter';
import { StorePool } from '../datastore/store-pool';
import { openDatastoreConfig } from '../cni-plugin/ipam';
import { notReady, type DaemonStatus } from './health';
import { loadIpamState, reclaimEmptyBlocks, utilisation } from '../ipam/gc';
import { TernError } from '../lib/errors';
import { VxlanDriver } from './vxlan';
import type { LoopStatus } from '../lib/reconcile-loop';

export { notReady, type DaemonStatus } from './health';

export class NodeDaemon {
  readonly metrics = new Metrics();
  private cni?: CniServer;
  /** Pod veths are deleted on a worker thread, in batches: a deletion blocks its thread ~20 ms in the kernel. */
  private readonly links = new LinkDeleter();
  /** The CNI requests' datastore handles, kept open between requests. */
  private readonly stores = new StorePool(openDatastoreConfig);
  private http?: http.Server;
  private ready = false;
  private store?: Store;
  private blocks?: BlockRouteReconciler;
  private acl?: AclReconciler;
  private reclaimTimer?: NodeJS.Timeout;
  private vxlan?: VxlanDriver;
  private reclaiming?: Promise<void>;
  private control?: net.Server;
  bgp?: BgpMesh;
  node = '';

  constructor(private readonly config: DaemonConfig, private readonly log: Logger) {}

  async start(): Promise<void> {
    checkSocketPath(this.config.cniSocket);
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
    if (this.bgp) {
      // The same root-only (0600) control socket as `ternctl bgp serve`: peers, Adj-RIB-In and why a route won.
      fs.mkdirSync(path.dirname(this.config.controlSocket), { recursive: true });
      this.control = await serveControl(this.bgp.speaker, this.config.controlSocket);
    }
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
    // Pods attached by a version that did not set the device group: the ACL dispatch finds them by group.
    const regrouped = await alignVethGroups();
    if (regrouped.length) this.log.info({ veths: regrouped.length }, 'pod veths given their device group');
    this.acl = new AclReconciler({
      store: this.store,
      log: this.log.child({ component: 'acl' }),
      policyDir: this.config.policyDir,
      node: this.node,
      onSync: (ok, ms) => this.metrics.aclSync(ok, ms / 1000),
    });
    await this.acl.start();
    const acl = this.acl;
    const links = this.links;
    const stores = this.stores;
    const cniLog = this.log.child({ component: 'cni' });
    this.cni = new CniServer({
      socketPath: this.config.cniSocket,
      log: cniLog,
      handle: (env, stdin) => handle(env, stdin, cniLog, { aclProgrammed: () => acl.programmed, aclSync: () => acl.syncOrThrow(), deleteLink: (name) => links.delete(name), stores }),
      observe: (command, ms, outcome) => this.metrics.cni(command, ms / 1000, outcome),
      malformed: (why) => this.metrics.malformed(why),
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
          this.metrics.blocksReclaimed(blocks.length);
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
          const why = st.notReady ?? [];
          send(why.length ? 503 : 200, why.length ? `not ready: ${why.join('; ')}\n` : 'ready\n');
        });
        return;
      }
      if (req.url === '/metrics') {
        void this.snapshotMetrics()
          .then(() => this.metrics.render())
          .then((text) => send(200, text, this.metrics.contentType))
          .catch((e) => send(500, `metrics failed: ${(e as Error).message}\n`));
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
    this.metrics.reconcile(this.loops());
    if (this.bgp) this.metrics.bgp(this.bgp.speaker.peers(), this.bgp.speaker.stats());
    if (this.store) {
      try {
        this.metrics.ipam(utilisation(await loadIpamState(this.store)).nodes.find((n) => n.node === this.node));
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
    const st: DaemonStatus = {
      node: this.node,
      ready: this.ready,
      datastore: { type: ds.type, where: ds.type === 'sqlite' ? ds.path : ds.endpoints.join(','), reachable },
      blocks: this.blocks?.blocks ?? [],
      bgp: this.bgp ? { asn: this.bgp.speaker.cfg.asn, routerId: this.bgp.speaker.cfg.routerId, peers: this.bgp.speaker.peers() } : undefined,
      acl: this.acl?.state,
      overlay: this.vxlan?.state,
      sockets: { cni: this.config.cniSocket, ...(this.control ? { control: this.config.controlSocket } : {}) },
      reconcilers: this.loops(),
    };
    return { ...st, notReady: notReady(st) };
  }

  private loops(): LoopStatus[] {
    return [this.blocks?.loop, this.acl?.loop, this.vxlan?.loop].filter((l) => !!l).map((l) => l.status);
  }

  async stop(): Promise<void> {
    this.ready = false;
    clearInterval(this.reclaimTimer);
    await this.reclaiming;
    await this.cni?.stop();
    await this.links.close();
    await this.stores.close();
    await this.blocks?.stop();
    await this.acl?.stop();
    await this.vxlan?.stop();
    if (this.control) {
      await new Promise<void>((r) => this.control!.close(() => r()));
      fs.rmSync(this.config.controlSocket, { force: true });
    }
    await this.bgp?.stop();
    await this.store?.close();
    if (this.http) await new Promise<void>((r) => this.http!.close(() => r()));
    this.log.info('node daemon stopped');
  }
}
