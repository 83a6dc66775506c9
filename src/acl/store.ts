/**
 * ACL resources in the datastore (/tern/acl/<kind>/<key>). Shared by
 * `ternctl policy`, the CNI plugin (which records each endpoint it attaches)
 * and the node daemon; programming the kernel from them is kernel-sync.ts.
 */
import type { Store, TxnOp } from '../datastore/types';
import { TernError } from '../lib/errors';
import type { Endpoint } from './model';
import type { Resource } from './parse';

export const ACL_PREFIX = '/tern/acl/';

export function resourceKey(r: Pick<Resource, 'kind' | 'key'>): string {
  return `${ACL_PREFIX}${r.kind}/${r.key}`;
}

/** A stored resource; `source` names who manages it when that is not `ternctl policy apply`. */
export type StoredResource = Resource & { source?: string };

/** What a node's watched policy directory writes: it owns exactly the resources tagged with this. */
export const POLICY_DIR_SOURCE = 'policies.d';

export async function storedResources(store: Store): Promise<StoredResource[]> {
  const { items } = await store.list(ACL_PREFIX);
  return items.map((kv) => JSON.parse(kv.value) as StoredResource);
}

/**
 * The writes that make the datastore hold exactly the directory's resources
 * (pure): changed or new ones are put, tagged with the source; ones the
 * directory once wrote and no longer has are deleted. Resources applied by
 * `ternctl policy apply` are never deleted, only overwritten by a file that
 * defines the same kind and name.
 */
export function planPolicyDir(desired: Resource[], stored: StoredResource[], source = POLICY_DIR_SOURCE): TxnOp[] {
  const have = new Map(stored.map((r) => [resourceKey(r), r]));
  const want = new Map(desired.map((r) => [resourceKey(r), { ...r, source }]));
  const ops: TxnOp[] = [];
  for (const [key, r] of [...want].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const value = JSON.stringify(r);
    const cur = have.get(key);
    if (!cur || JSON.stringify(cur) !== value) ops.push({ op: 'put', key, value });
  }
  for (const [key, r] of [...have].sort(([a], [b]) => (a < b ? -1 : 1))) if (r.source === source && !want.has(key)) ops.push({ op: 'delete', key });
  return ops;
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

/**
 * Whether the node's rules must be in force: anything is stored, an endpoint
 * included. The source check (a pod sends only from its own address, on its
 * own interface) and fail-closed for unknown interfaces hold from the first
 * pod, policy or not; only a node that never had a pod has no Tern rules.
 */
export function aclInUse(resources: Resource[]): boolean {
  return resources.length > 0;
}
