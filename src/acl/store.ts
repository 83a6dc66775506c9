/**
 * ACL resources in the datastore (/tern/acl/<kind>/<key>) and bringing one
 * node's rules in sync with them. Shared by `ternctl policy` and the CNI
 * plugin, which records each endpoint it attaches.
 */
import type { Store } from '../datastore/types';
import { TernError } from '../lib/errors';
import { Applier, type ApplyReport } from './applier';
import { compileRuleset } from './compile';
import type { Endpoint } from './model';
import type { Resource } from './parse';
import { toInput } from './state';

export const ACL_PREFIX = '/tern/acl/';

export function resourceKey(r: Pick<Resource, 'kind' | 'key'>): string {
  return `${ACL_PREFIX}${r.kind}/${r.key}`;
}

export async function storedResources(store: Store): Promise<Resource[]> {
  const { items } = await store.list(ACL_PREFIX);
  return items.map((kv) => JSON.parse(kv.value) as Resource);
}

/** Store or remove resources in one all-or-nothing transaction. */
export async function writeResources(store: Store, op: 'apply' | 'delete', rs: Resource[]): Promise<void> {
  if (!rs.length) return;
  const res = await store.txn(rs.map((r) => (op === 'apply' ? { op: 'put' as const, key: resourceKey(r), value: JSON.stringify(r) } : { op: 'delete' as const, key: resourceKey(r) })));
  if (!res.ok) throw new TernError('CONFLICT', 'datastore transaction failed');
}

export function endpointResource(e: Endpoint): Resource {
  return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
}

/** Compile everything stored and program one namespace (the calling one by default). */
export function syncRules(resources: Resource[], netnsPath?: string): ApplyReport {
  return new Applier({ netnsPath }).apply(compileRuleset(toInput(resources)));
}

/**
 * Whether the ACL engine is in use: some policy, tier, tenant or setting is
 * stored. Until then a node has no Tern rules at all (unselected pods are
 * allowed), and attaching a pod costs no iptables round trip.
 */
export function aclInUse(resources: Resource[]): boolean {
  return resources.some((r) => r.kind !== 'Endpoint');
}
