/** What two OPENs agree on (RFC 5492, 6793, 7911, 4724, 8654). Pure. */
import { AS_TRANS, familyKey, IPV4_UNICAST } from './constants';
import { AddPathMode, capabilitiesOf, type Capability, type OpenMessage } from './open';
import type { CodecOptions } from './attributes';

export interface GracefulRestartInfo {
  restartTime: number;
  /** The peer restarted (R bit) */
  restarting: boolean;
  /** family -> forwarding state preserved */
  families: Map<number, boolean>;
}

export interface Negotiated {
  peerAs: number;
  holdTime: number;
  as4: boolean;
  families: Set<number>;
  addPathReceive: Set<number>;
  addPathSend: Set<number>;
  extendedMessage: boolean;
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  /** The peer's graceful-restart capability, if it sent one. */
  peerGracefulRestart?: GracefulRestartInfo;
}

/** The AS a peer's OPEN claims: the 4-octet capability wins over the 2-octet field. */
export function peerAsOf(open: OpenMessage): number {
  const c = capabilitiesOf(open).find((x) => x.kind === 'four-octet-as') as Extract<Capability, { kind: 'four-octet-as' }> | undefined;
  return c ? c.asn : open.myAs;
}

function mpFamilies(caps: Capability[]): Set<number> {
  const s = new Set<number>();
  for (const c of caps) if (c.kind === 'multiprotocol') s.add(familyKey(c.afi, c.safi));
  // RFC 4760 §8: without any MP capability, IPv4 unicast is implied.
  if (s.size === 0) s.add(IPV4_UNICAST);
  return s;
}

function addPathModes(caps: Capability[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const c of caps) if (c.kind === 'add-path') for (const f of c.families) m.set(familyKey(f.afi, f.safi), f.mode);
  return m;
}

export function negotiate(local: OpenMessage, remote: OpenMessage): Negotiated {
  const lc = capabilitiesOf(local);
  const rc = capabilitiesOf(remote);
  const has = (caps: Capability[], k: Capability['kind']) => caps.some((c) => c.kind === k);
  const lf = mpFamilies(lc);
  const families = new Set([...mpFamilies(rc)].filter((f) => lf.has(f)));
  const la = addPathModes(lc);
  const ra = addPathModes(rc);
  const addPathReceive = new Set<number>();
  const addPathSend = new Set<number>();
  for (const f of families) {
    const l = la.get(f) ?? 0;
    const r = ra.get(f) ?? 0;
    if (l & AddPathMode.RECEIVE && r & AddPathMode.SEND) addPathReceive.add(f);
    if (l & AddPathMode.SEND && r & AddPathMode.RECEIVE) addPathSend.add(f);
  }
  const gr = rc.find((c) => c.kind === 'graceful-restart') as Extract<Capability, { kind: 'graceful-restart' }> | undefined;
  return {
    peerAs: peerAsOf(remote),
    // §4.2: the smaller of the two hold times; zero turns keepalives off.
    holdTime: Math.min(local.holdTime, remote.holdTime),
    as4: has(lc, 'four-octet-as') && has(rc, 'four-octet-as'),
    families,
    addPathReceive,
    addPathSend,
    extendedMessage: has(lc, 'extended-message') && has(rc, 'extended-message'),
    routeRefresh: has(rc, 'route-refresh'),
    enhancedRouteRefresh: has(lc, 'enhanced-route-refresh') && has(rc, 'enhanced-route-refresh'),
    peerGracefulRestart: gr && {
      restartTime: gr.restartTime,
      restarting: (gr.restartFlags & 0x8) !== 0,
      families: new Map(gr.families.map((f) => [familyKey(f.afi, f.safi), (f.flags & 0x80) !== 0])),
    },
  };
}

/** Codec options for reading what the peer sends. */
export function receiveOptions(n: Negotiated): CodecOptions {
  return { as4: n.as4, addPath: n.addPathReceive, extendedMessage: n.extendedMessage };
}
/** Codec options for writing to the peer. */
export function sendOptions(n: Negotiated): CodecOptions {
  return { as4: n.as4, addPath: n.addPathSend, extendedMessage: n.extendedMessage };
}

export interface LocalOpenConfig {
  asn: number;
  routerId: string;
  holdTime: number;
  families: number[];
  gracefulRestart?: { restartTime: number; restarting: boolean; forwardingPreserved: boolean };
  addPathReceive?: boolean;
}

/** Our OPEN: one capabilities parameter, as BIRD and GoBGP send it. */
export function buildOpen(c: LocalOpenConfig): OpenMessage {
  const caps: Capability[] = c.families.map((f) => ({ kind: 'multiprotocol', afi: f >> 8, reserved: 0, safi: f & 0xff }));
  caps.push({ kind: 'route-refresh' }, { kind: 'enhanced-route-refresh' }, { kind: 'extended-message' });
  if (c.gracefulRestart) {
    caps.push({
      kind: 'graceful-restart',
      restartFlags: c.gracefulRestart.restarting ? 0x8 : 0,
      restartTime: c.gracefulRestart.restartTime,
      families: c.families.map((f) => ({ afi: f >> 8, safi: f & 0xff, flags: c.gracefulRestart!.forwardingPreserved ? 0x80 : 0 })),
    });
  }
  caps.push({ kind: 'four-octet-as', asn: c.asn });
  if (c.addPathReceive) caps.push({ kind: 'add-path', families: c.families.map((f) => ({ afi: f >> 8, safi: f & 0xff, mode: AddPathMode.RECEIVE })) });
  return { type: 1, version: 4, myAs: c.asn > 0xffff ? AS_TRANS : c.asn, holdTime: c.holdTime, routerId: c.routerId, params: [{ type: 2, capabilities: caps }] };
}
