import type { RouteAttrs } from '../codec';

export interface LocalConfig {
  asn: number;
  routerId: string;
  /** Route-reflector cluster id (RFC 4456 §7); defaults to the router id. */
  clusterId?: string;
  /** Most next hops installed for one prefix (ECMP); 1 turns multipath off. */
  maxPaths?: number;
}

/** One prefix-list entry: `prefix` and anything longer, up to `maxLength`. */
export interface PrefixRule {
  prefix: string;
  maxLength?: number;
}

export interface RibPeer {
  /** Stable key: the peer's address. */
  id: string;
  address: string;
  asn: number;
  rrClient?: boolean;
  /** Our own address towards this peer, used for next-hop self, per family. */
  selfNextHop: { v4?: string; v6?: string };
  /** Rewrite the next hop to ourselves on iBGP too (always done on eBGP). */
  nextHopSelf?: boolean;
  /** eBGP: pass learned routes on with their next hop, not ours. */
  keepNextHop?: boolean;
  /** Import only routes inside these rules (the IPAM pools and/or an allow list). */
  importPrefixes?: PrefixRule[];
  /** Export only routes inside these rules. eBGP without a list exports nothing (RFC 8212). */
  exportPrefixes?: PrefixRule[];
  /** Tear the session down when the peer sends more prefixes than this. */
  maxPrefix?: number;
}

export const LOCAL_PEER_ID = '<local>';

/** One path in the Loc-RIB (a route from one peer, or originated here). */
export interface Path {
  peerId: string;
  pathId: number;
  attrs: RouteAttrs;
  /** eBGP-learned (false for iBGP and local). */
  ebgp: boolean;
  /** Peer BGP identifier (router id) for tie-breaks; ours for local routes. */
  routerId: string;
  peerAddress: string;
  /** Kept across a graceful restart of the peer, not yet refreshed (RFC 4724). */
  stale?: boolean;
}

export interface Destination {
  family: number;
  prefix: string;
  /** Not changed in place: replaced on every change (single paths are shared arrays). */
  paths: readonly Path[];
  best?: Path;
  reason: string;
  /** Paths sharing the best one's rank up to the ECMP point, best first. */
  multipath: Path[];
}

/**
 * Kernel changes, one batch, as parallel lists: no object per route, since a
 * batch lives across the kernel's round trips, long enough for V8 to promote
 * what it holds (BENCHMARKS.md, "BGP").
 */
export interface FibBatch {
  /**
   * Per route, its prefix: an IPv4 one as its v4PrefixKey number (the
   * Loc-RIB's key, so the kernel side neither formats nor parses prefix text),
   * anything else as text. fibPrefix() gives the text.
   */
  keys: (number | string)[];
  /** Per route, the next hops to install; empty means remove. Shared between routes: do not modify. */
  nextHops: (readonly string[])[];
}
