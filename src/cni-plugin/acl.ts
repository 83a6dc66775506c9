/**
 * The ACL side of ADD and DEL without a node daemon: record the endpoint
 * (identity, labels, named ports, addresses, host veth) in the datastore and,
 * once any policy, tier, tenant or setting exists, bring this node's rules in
 * sync. ADD fails, and is undone, if the rules cannot be programmed.
 */
import type { Store } from '../datastore/types';
import { aclInUse, endpointResource, kernelHasRules, storedResources, syncFromStore, writeResources, type Endpoint, type Resource } from '../acl';
import type { Ctx } from './context';

const PROTO: Record<string, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export function endpointFor(ctx: Ctx, hostIface: string, ips: string[]): Endpoint {
  const { env, conf } = ctx;
  return {
    name: env.args.get('K8S_POD_NAME') || env.containerId,
    namespace: env.args.get('K8S_POD_NAMESPACE') || 'default',
    labels: Object.fromEntries(conf.labels.map((l) => [l.key, l.value])),
    ips,
    hostIface,
    namedPorts: conf.ports.map((p) => ({ name: p.name, protocol: PROTO[p.protocol], port: p.port })),
  };
}

async function sync(store: Store, ctx: Ctx): Promise<void> {
  // Nothing in use and nothing programmed: no iptables round trip. The daemon knows the second part without asking the kernel.
  const programmed = () => (ctx.aclProgrammed ? ctx.aclProgrammed() : kernelHasRules());
  if (!aclInUse(await storedResources(store)) && !programmed()) return;
  const { report: r } = await syncFromStore(store, { when: (all) => aclInUse(all) || programmed() });
  if (r) ctx.log.debug({ backend: r.backend, chains: r.chainsWritten, sets: r.setsWritten }, 'acl in sync');
}

export async function recordEndpoint(store: Store, ctx: Ctx, ep: Endpoint): Promise<void> {
  const res = endpointResource(ep);
  await writeResources(store, 'apply', [res]);
  try {
    await sync(store, ctx);
  } catch (e) {
    await writeResources(store, 'delete', [res]).catch(() => undefined);
    throw e;
  }
}

/** Forget the endpoints on these host veths (DEL, GC) and re-sync. */
export async function forgetEndpoints(store: Store, ctx: Ctx, hostIfaces: string[]): Promise<void> {
  const gone = new Set(hostIfaces);
  const all = await storedResources(store);
  const stale = all.filter((r): r is Extract<Resource, { kind: 'Endpoint' }> => r.kind === 'Endpoint' && gone.has(r.value.hostIface));
  if (stale.length) await writeResources(store, 'delete', stale);
  await sync(store, ctx);
}
