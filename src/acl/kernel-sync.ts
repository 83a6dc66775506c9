/**
 * Bringing one node's rules in sync with the ACL resources in the datastore:
 * the adapter between acl/store.ts (the resources) and acl/applier.ts (the
 * kernel).
 */
import type { Store } from '../datastore/types';
import { withNodeLock } from '../lib/lock';
import { Applier, defaultLock, type ApplyReport } from './applier';
import { execSync } from '../dataplane/exec';
import { compileRuleset, endpointSetName } from './compile';
import { toInput } from './state';
import { storedResources, type StoredResource } from './store';

/**
 * Read the datastore and program one namespace, both under the namespace's
 * ACL lock: concurrent writers (CNI ADDs, `ternctl policy apply --sync`, the
 * daemon) each sync after their own write, and whoever syncs last has read
 * every write that finished before it, so no update is lost. With `when`, the
 * rules are only touched if it approves of what was read. `node`: this node's
 * name, so endpoint chains are built for its own endpoints only.
 */
export async function syncFromStore(store: Store, opts: { netnsPath?: string; node?: string; when?: (all: StoredResource[]) => boolean } = {}): Promise<{ resources: StoredResource[]; report?: ApplyReport }> {
  return withNodeLock(defaultLock(opts.netnsPath), async () => {
    const resources = await storedResources(store);
    if (opts.when && !opts.when(resources)) return { resources };
    // Only now: choosing the backend runs four iptables-save processes.
    const applier = new Applier({ netnsPath: opts.netnsPath });
    return { resources, report: await applier.applyHoldingLock(compileRuleset(toInput(resources), { node: opts.node })) };
  });
}

/**
 * Whether this namespace holds Tern's ACL state (an earlier sync created the
 * endpoint set). Such rules must keep following the datastore even after the
 * last policy is gone, or a new pod would be dropped as unknown (fail closed).
 */
export function kernelHasRules(netnsPath?: string): boolean {
  return execSync(netnsPath, 'ipset', ['list', '-n', endpointSetName(4)]).code === 0;
}
