/**
 * A blackhole route for each block this node owns: traffic to an unallocated
 * address of our own block stops here instead of bouncing along the default
 * route, and the block is what BGP advertises. Desired state comes from the
 * IPAM affinity index; the kernel is diffed by the blocks' own protocol mark
 * (RTPROT_BLOCK), so only our own blackholes are ever touched.
 */
import { RTPROT_BLOCK, RTPROT_LEGACY } from '../lib/constants';
import type { Logger } from '../lib/log';
import { parsePrefix, formatPrefix } from '../lib/cidr';
import type { Store, Watcher } from '../datastore/types';
import { AFFINITY } from '../ipam/model';
import { ReconcileLoop } from '../lib/reconcile-loop';
import { Rtnl } from '../dataplane';

/** Affinity keys look like /tern/ipam/v1/affinity/<pool>/<block>, CIDRs written a.b.c.d-len. */
export function blockOfAffinityKey(key: string): string | undefined {
  const rest = key.slice(AFFINITY.length).split('/');
  if (rest.length !== 2) return undefined;
  const i = rest[1].lastIndexOf('-');
  if (i <= 0) return undefined;
  try {
    return formatPrefix(parsePrefix(`${rest[1].slice(0, i)}/${rest[1].slice(i + 1)}`));
  } catch {
    return undefined;
  }
}

/** The blocks affine to `node`, sorted. */
export function ownBlocks(affinities: { key: string; value: string }[], node: string): string[] {
  return affinities
    .filter((a) => a.value === node)
    .map((a) => blockOfAffinityKey(a.key))
    .filter((b): b is string => !!b)
    .sort();
}

export interface RouteDiff {
  add: string[];
  remove: string[];
}

export function diffBlackholes(desired: string[], present: string[]): RouteDiff {
  const want = new Set(desired);
  const have = new Set(present);
  return { add: desired.filter((d) => !have.has(d)), remove: present.filter((p) => !want.has(p)) };
}

export class BlockRouteReconciler {
  private watcher?: Watcher;
  blocks: string[] = [];
  /** Affinities -> kernel; a failed route write is retried with backoff, no datastore change needed. */
  readonly loop: ReconcileLoop;

  constructor(private readonly deps: { store: Store; node: string; log: Logger; onChange?: (blocks: string[]) => void }) {
    this.loop = new ReconcileLoop({ name: 'block-routes', log: deps.log, run: async () => void (await this.reconcile((await this.deps.store.list(AFFINITY)).items)) });
  }

  async start(): Promise<void> {
    const revision = await this.deps.store.revision();
    await this.loop.runNow();
    this.watcher = await this.deps.store.watch(AFFINITY, revision, () => this.loop.kick(), (e) => this.deps.log.warn({ err: e }, 'affinity watch failed'));
  }

  /** Read what the kernel has (our blackholes only), apply the difference. */
  async reconcile(affinities: { key: string; value: string }[]): Promise<RouteDiff> {
    const desired = ownBlocks(affinities, this.deps.node);
    const rt = Rtnl.open();
    try {
      const blackholes = (await rt.listRoutes({ table: 254 })).filter((r) => r.type === 'blackhole');
      const present = blackholes.filter((r) => r.protocol === RTPROT_BLOCK).map((r) => r.dst);
      const diff = diffBlackholes(desired, present);
      // Blackholes with the old shared mark were ours: a wanted one is re-marked in place by the replace, the rest go.
      const legacy = diffBlackholes(desired, blackholes.filter((r) => r.protocol === RTPROT_LEGACY).map((r) => r.dst)).remove;
      for (const dst of diff.add) await rt.replaceRoute({ dst, type: 'blackhole', protocol: RTPROT_BLOCK });
      for (const dst of diff.remove) await rt.deleteRoute({ dst, type: 'blackhole', protocol: RTPROT_BLOCK });
      for (const dst of legacy) await rt.deleteRoute({ dst, type: 'blackhole', protocol: RTPROT_LEGACY });
      if (diff.add.length || diff.remove.length) this.deps.log.info({ added: diff.add, removed: diff.remove }, 'block blackhole routes');
      const changed = JSON.stringify(desired) !== JSON.stringify(this.blocks);
      this.blocks = desired;
      if (changed) this.deps.onChange?.(desired);
      return diff;
    } finally {
      rt.close();
    }
  }

  async stop(): Promise<void> {
    await this.watcher?.close();
    await this.loop.stop();
  }
}
