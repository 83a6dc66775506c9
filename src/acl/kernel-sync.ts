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
import { fileMemory, knownRulesFile } from './known-rules';

/**
 * Where a sync leaves its record of the rules for the next process
 * (known-rules.ts): /run/tern, root-only; TERN_ACL_STATE_DIR moves it
 * (tests and benches, which must not share state with the host's).
 */
export function knownRulesDir(): string {
  return process.env.TERN_ACL_STATE_DIR || '/run/tern';
}

/**
 * Read the datastore and program one namespace, both under the namespace's
 * ACL lock: concurrent writers (CNI ADDs, `ternctl policy apply --sync`, the
 * daemon) each sync after their own write, and whoever syncs last has read
 * every write that finished before it, so no update is lost. With `when`, the
 * rules are only touched if it approves of what was read. `node`: this node's
 * name, so endpoint chains are built for its own endpoints only.
 */
export async function syncFromStore(store: Store, opts: { netnsPath?: string; node?: string; when?: (all: StoredResource[]) => boolean | Promise<boolean> } = {}): Promise<{ resources: StoredResource[]; report?: ApplyReport }> {
  return withNodeLock(defaultLock(opts.netnsPath), async () => {
    const resources = await storedResources(store);
    if (opts.when && !(await opts.when(resources))) return { resources };
    // Only now: choosing the backend runs four iptables-save processes, unless the last sync's record still holds.
    const applier = new Applier({ netnsPath: opts.netnsPath, memory: fileMemory(knownRulesFile(knownRulesDir(), opts.netnsPath)) });
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

/** kernelHasRules over netlink (no process); through `ipset` should the dump fail. */
export async function kernelHasRulesAsync(netnsPath?: string): Promise<boolean> {
  const name = endpointSetName(4);
  try {
    const { listSets } = await import('../dataplane/ipset-nl');
    return (await listSets((n) => n === name, netnsPath)).has(name);
  } catch {
    return kernelHasRules(netnsPath);
  }
}
