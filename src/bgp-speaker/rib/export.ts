/**
 * What one path looks like when sent to one peer: iBGP split horizon,
 * route reflection (RFC 4456), next-hop self, AS prepend, RFC 8212 default.
 * Returns undefined when the path must not go to that peer.
 */
import type { RouteAttrs } from '../codec';
import { DEFAULT_LOCAL_PREF } from './decision';
import { LOCAL_PEER_ID, type LocalConfig, type Path, type RibPeer } from './types';
import type { PrefixFilter } from './policy';

export interface ExportTarget {
  cfg: RibPeer;
  exportFilter?: PrefixFilter;
}

export interface SourceInfo {
  rrClient: boolean;
}

export function exportAttrs(path: Path, prefix: string, source: SourceInfo | undefined, target: ExportTarget, local: LocalConfig): RouteAttrs | undefined {
  const t = target.cfg;
  if (path.peerId === t.id) return undefined;
  const targetIbgp = t.asn === local.asn;
  const isLocal = path.peerId === LOCAL_PEER_ID;
  const sourceIbgp = !isLocal && !path.ebgp;
  const reflecting = sourceIbgp && targetIbgp;
  // iBGP split horizon (RFC 4271 §9.2), relaxed by route reflection (RFC 4456 §6).
  if (reflecting && !(source?.rrClient || t.rrClient)) return undefined;
  if (target.exportFilter) {
    if (!target.exportFilter.matches(prefix)) return undefined;
  } else if (!targetIbgp) return undefined; // RFC 8212: no explicit export policy, nothing to eBGP
  const a = path.attrs;
  const v6 = prefix.includes(':');
  const self = v6 ? t.selfNextHop.v6 : t.selfNextHop.v4;
  if (!targetIbgp) {
    if (!self) return undefined;
    // A full AS_SEQUENCE (255 ASes, one count octet) gets a new segment in front (RFC 4271 §5.1.2).
    const first = a.asPath[0];
    const asPath = first && first.type === 2 && first.asns.length < 255 ? [{ type: 2, asns: [local.asn, ...first.asns] }, ...a.asPath.slice(1)] : [{ type: 2, asns: [local.asn] }, ...a.asPath];
    const out: RouteAttrs = { origin: a.origin, asPath, nextHop: t.keepNextHop && !isLocal && a.nextHop ? a.nextHop : self };
    if (isLocal && a.med !== undefined) out.med = a.med; // a MED received from another AS does not leave ours
    if (a.atomicAggregate) out.atomicAggregate = true;
    if (a.aggregator) out.aggregator = a.aggregator;
    if (a.communities) out.communities = a.communities;
    if (a.largeCommunities) out.largeCommunities = a.largeCommunities;
    if (a.unknown) out.unknown = a.unknown;
    return out;
  }
  const out: RouteAttrs = { ...a, localPref: a.localPref ?? DEFAULT_LOCAL_PREF };
  if (isLocal || (!reflecting && t.nextHopSelf)) {
    if (!self) return undefined;
    out.nextHop = self;
    delete out.nextHopLocal;
  }
  if (reflecting) {
    out.originatorId = a.originatorId ?? path.routerId;
    out.clusterList = [local.clusterId ?? local.routerId, ...(a.clusterList ?? [])];
  }
  return out;
}
