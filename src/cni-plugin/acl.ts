/**
 * The ACL side of ADD and DEL without a node daemon: record the endpoint
 * (identity, labels, named ports, addresses, host veth) in the datastore and,
 * once any policy, tier, tenant or setting exists, bring this node's rules in
 * sync. ADD writes the record in its address allocation's transaction, and
 * fails, and is undone, if the rules cannot be programmed.
 */
import type { Store, TxnOp } from '../datastore/types';
import { aclInUse, endpointResource, resourceKey, storedResources, writeResources } from '../acl/store';
import type { Endpoint } from '../acl/model';
import type { Resource } from '../acl/parse';
import { resolveNodeName } from '../ipam/nodename';
import type { Ctx } from './context';

const PROTO: Record<string, number> = { TCP: 6, UDP: 17, SCTP: 132 };

/** Which attachment a CNI-written endpoint record belongs to: GC forgets it by this, with or without a handle or a veth. */
export interface EndpointAttachment {
  network: string;
  containerId: string;
  ifname: string;
  node: string;
}

export type CniEndpoint = Endpoint & { attachment: EndpointAttachment };

export function endpointFor(ctx: Ctx, hostIface: string, ips: string[], node: string): CniEndpoint {
  const { env, conf } = ctx;
  return {
    attachment: { network: conf.name, containerId: env.containerId, ifname: env.ifname, node },
    name: env.args.get('K8S_POD_NAME') || env.containerId,
    namespace: env.args.get('K8S_POD_NAMESPACE') || 'default',
    labels: Object.fromEntries(conf.labels.map((l) => [l.key, l.value])),
    ips,
    hostIface,
    node,
    namedPorts: conf.ports.map((p) => ({ name: p.name, protocol: PROTO[p.protocol], port: p.port })),
  };
}

/** The endpoint record's write (ADD puts it with the allocation) and the delete that undoes it. */
export function endpointRecordOps(ep: Endpoint): { put: TxnOp; undo: TxnOp } {
  const res = endpointResource(ep);
  const key = resourceKey(res);
  return { put: { op: 'put', key, value: JSON.stringify(res) }, undo: { op: 'delete', key } };
}

/** Bring the node's rules in line with the datastore (once anything ACL is stored or programmed). */
export async function syncRules(store: Store, ctx: Ctx): Promise<void> {
  if (ctx.aclSync) return ctx.aclSync(); // the daemon's loop (incremental where it can be)
  // The kernel side (compiler, applier) is loaded only when rules are to be touched.
  const { kernelHasRulesAsync, syncFromStore } = await import('../acl/kernel-sync');
  // Nothing in use and nothing programmed: no iptables round trip. The daemon knows the second part without asking the kernel.
  const programmed = async () => (ctx.aclProgrammed ? ctx.aclProgrammed() : kernelHasRulesAsync());
  if (!aclInUse(await storedResources(store)) && !(await programmed())) return;
  const { report: r } = await syncFromStore(store, { node: resolveNodeName({ nodename: ctx.conf.nodename }), when: async (all) => aclInUse(all) || (await programmed()) });
  if (r) ctx.log.debug({ backend: r.backend, chains: r.chainsWritten, sets: r.setsWritten }, 'acl in sync');
}

type EndpointResource = Extract<Resource, { kind: 'Endpoint' }>;

/**
 * Forget the endpoints on these host veths (DEL, GC), and with `stale` every
 * other endpoint record it picks (GC: attachments the runtime no longer
 * lists), then re-sync.
 */
export async function forgetEndpoints(store: Store, ctx: Ctx, hostIfaces: string[], stale?: (a: EndpointAttachment) => boolean): Promise<void> {
  const gone = new Set(hostIfaces);
  const all = await storedResources(store);
  const attachmentOf = (r: EndpointResource) => (r.value as Partial<CniEndpoint>).attachment;
  const drop = all.filter((r): r is EndpointResource => {
    if (r.kind !== 'Endpoint') return false;
    const a = attachmentOf(r);
    return gone.has(r.value.hostIface) || (!!stale && !!a && stale(a));
  });
  if (drop.length) await writeResources(store, 'delete', drop);
  await syncRules(store, ctx);
}
