/**
 * JIT warm-up for the per-route path of a received table: framing, decoding,
 * import, the decision process, and the kernel batches through the route
 * writer's encoding, run over a synthetic IPv4 table in a scratch RIB before
 * any session starts. A cold speaker otherwise pays V8's optimising compiles
 * during its first burst (on a 2-core machine as much CPU again as the routes
 * themselves, BENCHMARKS.md), so the first routes reach the kernel late.
 * Nothing leaves the process: the kernel sink rehearses (KernelFib.rehearse).
 *
 * It follows the speaker's own rhythm, since code compiled for another one is
 * thrown away at the first real burst: a flush after every READ_SLICE octets
 * (the first exports a full table, the rest are incremental), and the kernel's
 * changes taken FIB_STEP at a time into batches made where the speaker makes them.
 */
import { buildAnnouncements, decodeMessage, frameLength, interpretUpdate, IPV4_UNICAST, MsgType, type CodecOptions, type RouteAttrs, type UpdateMessage } from './codec';
import type { PeerSpec, SpeakerConfig } from './config';
import { READ_SLICE } from './connection';
import { newFibBatch, type FibBatch, type Rib } from './rib';
import { FIB_STEP, newRib, ribPeer } from './speaker';

/** The scratch peer (TEST-NET-1), and the speaker when no configuration is given. */
const PEER = '192.0.2.1';
const DEFAULT_CONFIG = { asn: 64514, routerId: '192.0.2.2', peers: [] };

/** Routes per round and rounds: 4 rounds left the first 10k of a burst 1.3-1.4x BIRD, 10 rounds 1.1x (BENCHMARKS.md). */
export const WARM_UP_ROUTES = 4096;
export const WARM_UP_ROUNDS = 10;

/**
 * The synthetic table: /26s from one next hop, as a full-table peer sends them, half in
 * 100.64.0.0/10 and half in 198.18.0.0/15, with a next hop above 128.0.0.0: addresses on
 * both sides of 2^31, so the compiled code has seen both of V8's number representations.
 */
function table(routes: number, attrs: RouteAttrs, o: CodecOptions): Buffer {
  const nlri = Array.from({ length: routes }, (_, i) => {
    const a = (i % 2 ? 0x64400000 : 0xc6120000) + (i >> 1) * 64;
    return { prefix: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/26` };
  });
  return Buffer.concat(buildAnnouncements(IPV4_UNICAST, attrs, nlri, o));
}

/** Flush, then hand the kernel sink what the flush changed, FIB_STEP routes a batch. */
async function flush(rib: Rib, kernel?: (batch: FibBatch) => unknown): Promise<number> {
  rib.flush();
  let n = 0;
  for (let b: FibBatch; (b = rib.takeFib(FIB_STEP, newFibBatch())).keys.length; ) {
    await kernel?.(b);
    n += b.keys.length;
  }
  return n;
}

export interface WarmUpOptions {
  /**
   * The speaker's configuration: the scratch RIB is built from it and the scratch peer from its
   * first peer (eBGP or iBGP as that one is), so the compiled code meets the objects the real
   * session brings. Compiled for other ones, it is thrown away at the first real UPDATE.
   */
  config?: Pick<SpeakerConfig, 'asn' | 'routerId' | 'clusterId' | 'maxPaths' | 'peers'>;
  /** Gets each kernel batch as the speaker's sink would; it should rehearse, not write. */
  kernel?: (batch: FibBatch) => unknown;
  routes?: number;
  rounds?: number;
}

/** Runs the path `rounds` times. Resolves to the routes that reached the kernel batches. */
export async function warmUp(opts: WarmUpOptions = {}): Promise<number> {
  const { kernel, routes = WARM_UP_ROUTES, rounds = WARM_UP_ROUNDS } = opts;
  const config = opts.config ?? DEFAULT_CONFIG;
  const spec: PeerSpec = { ...(config.peers[0] ?? { asn: 64512 }), address: PEER };
  const ebgp = spec.asn !== config.asn;
  // Everything the table brings is accepted: an eBGP peer needs an import filter for that (RFC 8212).
  if (ebgp || spec.importPrefixes) spec.importPrefixes = ['0.0.0.0/0'];
  const o: CodecOptions = { as4: true };
  const attrs: RouteAttrs = ebgp ? { origin: 0, asPath: [{ type: 2, asns: [spec.asn] }], nextHop: PEER } : { origin: 0, asPath: [], nextHop: PEER, localPref: 100 };
  const wire = table(routes, attrs, o);
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    const rib = newRib(config);
    rib.addPeer(ribPeer(spec));
    rib.peerUp(PEER, { routerId: PEER, families: new Set([IPV4_UNICAST]), selfNextHop: { v4: config.routerId } });
    let sliceEnd = READ_SLICE;
    for (let off = 0, len; (len = frameLength(wire, off, o)) > 0; off += len) {
      if (off >= sliceEnd) {
        n += await flush(rib, kernel);
        sliceEnd = off + READ_SLICE;
      }
      const m = decodeMessage(wire.subarray(off, off + len), o);
      if (m.type === MsgType.UPDATE) rib.applyUpdate(PEER, interpretUpdate(m as UpdateMessage, o).families);
    }
    n += await flush(rib, kernel);
  }
  return n;
}
