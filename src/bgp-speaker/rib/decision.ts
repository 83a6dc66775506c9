/**
 * The decision process (RFC 4271 §9.1.2.2) plus the usual tie-breaks, each
 * step named so that `ternctl bgp routes` can say why a path won.
 */
import { addrToBytes, asPathCount } from '../codec';
import type { Path } from './types';

export const DEFAULT_LOCAL_PREF = 100;

const localPref = (p: Path) => p.attrs.localPref ?? DEFAULT_LOCAL_PREF;
const neighborAs = (p: Path) => {
  const first = p.attrs.asPath[0];
  return first && first.type === 2 ? first.asns[0] : 0;
};
// Addresses compare as numbers (IPv4 before IPv6), never as text: '2001:db8::2' < '2001:db8::1:0'.
// Peers and originators are few, so their byte forms are kept.
const addrBytes = new Map<string, Buffer>();
function cmpAddr(a: string, b: string): number {
  if (a === b) return 0;
  const x = bytesOf(a);
  const y = bytesOf(b);
  return x.length - y.length || Buffer.compare(x, y);
}
function bytesOf(a: string): Buffer {
  let bytes = addrBytes.get(a);
  if (!bytes) {
    if (addrBytes.size >= 4096) addrBytes.clear();
    addrBytes.set(a, (bytes = addrToBytes(a)));
  }
  return bytes;
}

type Step = { reason: string; cmp: (a: Path, b: Path) => number; multipath?: boolean };

/** Negative when `a` is better. Steps up to and including `multipath` decide ECMP equality. */
const STEPS: Step[] = [
  { reason: 'not-stale', cmp: (a, b) => Number(!!a.stale) - Number(!!b.stale) },
  { reason: 'local-pref', cmp: (a, b) => localPref(b) - localPref(a) },
  { reason: 'locally-originated', cmp: (a, b) => Number(a.peerId !== '<local>') - Number(b.peerId !== '<local>') },
  { reason: 'as-path-length', cmp: (a, b) => asPathCount(a.attrs.asPath) - asPathCount(b.attrs.asPath) },
  { reason: 'origin', cmp: (a, b) => a.attrs.origin - b.attrs.origin },
  // MED only compares between paths from the same neighboring AS (§9.1.2.2 c).
  { reason: 'med', cmp: (a, b) => (neighborAs(a) === neighborAs(b) ? (a.attrs.med ?? 0) - (b.attrs.med ?? 0) : 0) },
  { reason: 'ebgp-over-ibgp', cmp: (a, b) => Number(!a.ebgp) - Number(!b.ebgp), multipath: true },
  // RFC 4456 §9: ORIGINATOR_ID stands in for the router id of reflected routes.
  { reason: 'router-id', cmp: (a, b) => cmpAddr(a.attrs.originatorId ?? a.routerId, b.attrs.originatorId ?? b.routerId) },
  { reason: 'cluster-list-length', cmp: (a, b) => (a.attrs.clusterList?.length ?? 0) - (b.attrs.clusterList?.length ?? 0) },
  { reason: 'peer-address', cmp: (a, b) => cmpAddr(a.peerAddress, b.peerAddress) },
  { reason: 'path-id', cmp: (a, b) => a.pathId - b.pathId },
];
const MULTIPATH_STEPS = STEPS.findIndex((s) => s.multipath) + 1;

/** Compare two paths: negative if `a` wins, with the step that decided. */
export function comparePaths(a: Path, b: Path): { order: number; reason: string } {
  for (const s of STEPS) {
    const d = s.cmp(a, b);
    if (d !== 0) return { order: d, reason: s.reason };
  }
  return { order: 0, reason: 'equal' };
}

export interface Selection {
  best?: Path;
  reason: string;
  multipath: Path[];
}

export function selectBest(paths: readonly Path[], maxPaths = 1): Selection {
  if (paths.length === 0) return { reason: 'no-path', multipath: [] };
  if (paths.length === 1) return { best: paths[0], reason: 'only-path', multipath: [paths[0]] };
  let best = paths[0];
  for (let i = 1; i < paths.length; i++) if (comparePaths(paths[i], best).order < 0) best = paths[i];
  // The reason is the step that beat the runner-up.
  let reason = '';
  let runnerUp: Path | undefined;
  for (const p of paths) {
    if (p === best) continue;
    if (!runnerUp || comparePaths(p, runnerUp).order < 0) runnerUp = p;
  }
  reason = comparePaths(best, runnerUp!).reason;
  const multipath = [best];
  if (maxPaths > 1) {
    const equal = (p: Path) => STEPS.slice(0, MULTIPATH_STEPS).every((s) => s.cmp(p, best) === 0);
    for (const p of paths) {
      if (multipath.length >= maxPaths) break;
      if (p !== best && equal(p) && !multipath.some((m) => m.attrs.nextHop === p.attrs.nextHop)) multipath.push(p);
    }
  }
  return { best, reason, multipath };
}
