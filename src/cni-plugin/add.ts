/** ADD: config -> IPAM -> container netns -> veth -> routes -> result (ptp.go's order). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TernError } from '../lib/errors';
import { NetnsHandle } from '../dataplane/netns';
import { Rtnl } from '../dataplane/rtnl';
import { hostVethName, planEndpoint } from '../dataplane/endpoint-plan';
import { applyEndpoint, removeEndpoint } from '../dataplane/endpoint';
import { parsePrefix } from '../lib/cidr';
import type { TxnOp } from '../datastore/types';
import type { AllocatedIp } from '../ipam/types';
import type { IPPool } from '../ipam/model';
import { openIpam, useDatastore } from './ipam';
import { endpointFor, endpointRecordOps, syncRules } from './acl';
import { buildResult, type CniResult } from './result';
import { allocationKey, requestedIps, type Ctx } from './context';

/**
 * How long a detected uplink MTU is reused. Finding it dumps the node's main
 * routing table, which on a node that learns a fabric's routes over BGP holds
 * thousands: 33-82 ms per ADD with 10,000 routes. The daemon serves many ADDs
 * from one process, so it looks again at most this often (Calico's CNI reads
 * an MTU its node agent detected at start). One-shot plugin processes share
 * the finding through a file in UPLINK_STATE_DIR.
 */
export const UPLINK_MTU_TTL_MS = 10_000;
export const UPLINK_STATE_DIR = '/run/tern';
let uplinkMtu: { mtu: number; at: number; netns: number } | undefined;

/** What a process remembers of the uplink for the next ones: which device (0: no default route), and when it was found. */
interface UplinkNote {
  index: number;
  name: string;
  at: number;
}

/** MTU of the device behind the node's default route (the uplink), else 1500; looked up again after UPLINK_MTU_TTL_MS. */
export async function detectUplinkMtu(now = Date.now(), stateDir = UPLINK_STATE_DIR): Promise<number> {
  const netns = fs.statSync('/proc/self/ns/net').ino; // one entry per node namespace, should a process serve several
  if (uplinkMtu && uplinkMtu.netns === netns && now - uplinkMtu.at < UPLINK_MTU_TTL_MS && now >= uplinkMtu.at) return uplinkMtu.mtu;
  const file = path.join(stateDir, `uplink-${netns}.json`);
  const rt = Rtnl.open();
  try {
    // Another process found the uplink lately: ask the kernel for that one device (its MTU now, and that it is
    // still there under its name, since a namespace's inode number is reused once it is gone), not the whole table.
    const note = readNote(file, now);
    let mtu: number | undefined;
    if (note) {
      if (note.index === 0) mtu = 1500;
      else {
        const link = await rt.linkByIndex(note.index);
        if (link?.name === note.name && link.mtu) mtu = link.mtu;
      }
    }
    if (mtu === undefined) {
      const found = await readUplink(rt);
      mtu = found?.mtu ?? 1500;
      writeNote(file, { index: found?.index ?? 0, name: found?.name ?? '', at: now });
    }
    uplinkMtu = { mtu, at: note?.at ?? now, netns };
    return mtu;
  } finally {
    rt.close();
  }
}

function readNote(file: string, now: number): UplinkNote | undefined {
  try {
    const n = JSON.parse(fs.readFileSync(file, 'utf8')) as UplinkNote;
    if (!Number.isInteger(n.index) || typeof n.name !== 'string' || typeof n.at !== 'number') return undefined;
    return now - n.at < UPLINK_MTU_TTL_MS && now >= n.at ? n : undefined;
  } catch {
    return undefined; // none yet, or unreadable: look it up
  }
}

/** Best effort: a note that cannot be written only costs the next process the lookup. */
function writeNote(file: string, note: UplinkNote): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.writeFileSync(tmp, JSON.stringify(note));
    fs.renameSync(tmp, file);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}

async function readUplink(rt: Rtnl): Promise<{ index: number; name: string; mtu: number } | undefined> {
  for (const family of [4, 6] as const) {
    const def = (await rt.listRoutes({ family, table: 254 })).find((r) => r.dst === (family === 4 ? '0.0.0.0/0' : '::/0'));
    const dev = def?.dev ?? def?.multipath?.[0]?.dev;
    if (dev) {
      const link = await rt.linkByIndex(dev);
      if (link?.mtu) return { index: dev, name: link.name, mtu: link.mtu };
    }
  }
  return undefined;
}

export function openContainerNs(path: string): NetnsHandle {
  try {
    return NetnsHandle.open(path);
  } catch (e) {
    throw new TernError('INVALID_ENV', `CNI_NETNS: cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export async function cmdAdd(ctx: Ctx): Promise<CniResult> {
  const { env, conf, log } = ctx;
  const ns = openContainerNs(env.netns);
  try {
    // Refuse before allocating, so a repeated ADD cannot release the address of a live attachment.
    const cont = Rtnl.open(ns);
    try {
      if (await cont.linkByName(env.ifname)) throw new TernError('ALREADY_EXISTS', `interface ${env.ifname} already exists in ${env.netns}`);
      return await addChecked(ctx, ns, cont);
    } finally {
      cont.close();
    }
  } finally {
    ns.close();
  }
}

/** ADD once the container interface is known to be absent (`cont`: a socket in the container namespace, kept for the veth). */
async function addChecked(ctx: Ctx, ns: NetnsHandle, cont: Rtnl): Promise<CniResult> {
  const { env, conf, log } = ctx;
  const mtu = conf.mtu || (await detectUplinkMtu());
  const key = allocationKey(ctx);
  const { store, done } = useDatastore(ctx);
  const ipam = openIpam(conf, log, store);
  // A routed pod's endpoint record (VLAN pods have none) is written in the
  // allocation's own transaction: one datastore round trip, and an ADD cut
  // short anywhere leaves both or neither. The undo goes with the release.
  const vlanPoolOf = (ips: AllocatedIp[]) => ips.map((i) => ipam.poolRecord(i.pool)).find((p) => p?.mode === 'vlan');
  const endpointRecord = (ips: AllocatedIp[]) => endpointRecordOps(endpointFor(ctx, hostVethName(env.containerId, env.ifname), ips.map((i) => i.address), ipam.node));
  let undo: TxnOp[] = [];
  try {
    const { ips, created } = await ipam.allocateNew({
      key,
      pools: conf.ipam.pools,
      requested: requestedIps(ctx),
      attrs: { namespace: env.args.get('K8S_POD_NAMESPACE'), pod: env.args.get('K8S_POD_NAME'), node: conf.nodename },
      alongside: (ips) => (vlanPoolOf(ips) ? [] : [endpointRecord(ips).put]),
    });
    log.debug({ ips, created }, 'allocated');
    try {
      const vlanPool = vlanPoolOf(ips);
      if (vlanPool) return await attachVlan(ctx, vlanPool, ips, ns.path);
      const record = endpointRecord(ips);
      undo = [record.undo];
      // An allocation this ADD found already made was written without the record.
      if (!created && !(await store.txn([record.put])).ok) throw new TernError('CONFLICT', 'datastore transaction failed');
      const plan = planEndpoint({ network: conf.name, containerId: env.containerId, ifname: env.ifname, ips, mtu });
      const applied = await applyEndpoint(plan, ns, { cont });
      try {
        await syncRules(store, ctx);
      } catch (e) {
        await (ctx.deleteLink ?? removeEndpoint)(plan.hostIfName);
        throw e;
      }
      log.info({ host: plan.hostIfName, ips: ips.map((i) => i.address) }, 'attached');
      return buildResult({
        version: conf.cniVersion,
        host: { name: plan.hostIfName, mac: applied.host.mac, mtu },
        container: { name: env.ifname, mac: applied.container.mac, mtu, sandbox: env.netns },
        ips,
        dns: conf.dns,
      });
    } catch (e) {
      await ipam.release(key, undo);
      throw e;
    }
  } finally {
    await ipam.close();
    await done();
  }
}

/** VLAN mode: the pod goes onto its pool's 802.1Q segment with the pool's subnet and router. */
async function attachVlan(ctx: Ctx, pool: IPPool, ips: AllocatedIp[], netnsPath: string): Promise<CniResult> {
  const { env, conf, log } = ctx;
  const v = pool.vlan!;
  if (ips.length !== 1) throw new TernError('INVALID_CONFIG', `VLAN pool ${pool.cidr}: give this network one address family only (got ${ips.map((i) => i.address).join(', ')})`);
  const prefixLen = parsePrefix(pool.cidr).length;
  // Loaded only for VLAN pods.
  const { attachVlanPod } = await import('../overlay/vlan');
  const r = await attachVlanPod({
    pool: { vlanId: v.id, parent: v.parent, gateway: v.gateway, mtu: v.mtu },
    containerId: env.containerId,
    ifName: env.ifname,
    address: `${ips[0].address}/${prefixLen}`,
    podNetnsPath: netnsPath,
  });
  log.info({ vlan: v.id, host: r.hostVeth, ip: ips[0].address }, 'attached to VLAN');
  const mtu = v.mtu ?? 1500;
  return buildResult({
    version: conf.cniVersion,
    host: { name: r.hostVeth, mtu },
    container: { name: env.ifname, mac: r.mac, mtu, sandbox: env.netns },
    ips,
    dns: conf.dns,
    onSubnet: { prefixLen, gateway: v.gateway },
  });
}
