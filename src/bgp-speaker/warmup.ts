/**
 * JIT warm-up for the per-route path of a received table: framing, decoding,
 * import, the decision process and the kernel batch, run over a synthetic IPv4
 * table in a scratch RIB before any session starts. A cold speaker otherwise
 * pays V8's optimising compiles during its first burst (on a 2-core machine
 * as much CPU again as the routes themselves, BENCHMARKS.md), so the first
 * routes reach the kernel late. Pure: nothing leaves the process.
 */
import { buildAnnouncements, decodeMessage, frameLength, interpretUpdate, IPV4_UNICAST, MsgType, type CodecOptions, type UpdateMessage } from './codec';
import { Rib, type FibBatch } from './rib';
import { ribPeer } from './speaker';

/** The scratch peer (TEST-NET-1). */
const PEER = '192.0.2.1';

/** Routes per round and rounds: 4 rounds left the first 10k of a burst 1.3-1.4x BIRD, 10 rounds 1.1x (BENCHMARKS.md). */
export const WARM_UP_ROUTES = 4096;
export const WARM_UP_ROUNDS = 10;

/**
 * The synthetic table: /26s from one next hop, as a full-table peer sends them, half in
 * 100.64.0.0/10 and half in 198.18.0.0/15, with a next hop above 128.0.0.0: addresses on
 * both sides of 2^31, so the compiled code has seen both of V8's number representations.
 */
function table(routes: number, o: CodecOptions): Buffer {
  const nlri = Array.from({ length: routes }, (_, i) => {
    const a = (i % 2 ? 0x64400000 : 0xc6120000) + (i >> 1) * 64;
    return { prefix: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/26` };
  });
  return Buffer.concat(buildAnnouncements(IPV4_UNICAST, { origin: 0, asPath: [{ type: 2, asns: [64512] }], nextHop: PEER }, nlri, o));
}

/**
 * Runs the path `rounds` times; `kernel` gets each kernel batch as the speaker's sink would
 * (it should encode without sending). Returns the routes that reached the batches.
 */
export function warmUp(kernel?: (batch: FibBatch) => void, routes = WARM_UP_ROUTES, rounds = WARM_UP_ROUNDS): number {
  const o: CodecOptions = { as4: true };
  const wire = table(routes, o);
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    // Built as the speaker builds its own, so the compiled code sees the same object shapes.
    const rib = new Rib({ asn: 64514, routerId: '192.0.2.2', clusterId: undefined, maxPaths: undefined });
    rib.addPeer(ribPeer({ address: PEER, asn: 64512, importPrefixes: ['0.0.0.0/0'], exportPrefixes: ['192.0.2.0/24'] }));
    rib.peerUp(PEER, { routerId: PEER, families: [IPV4_UNICAST], selfNextHop: { v4: '192.0.2.2' } });
    for (let off = 0, len; (len = frameLength(wire, off, o)) > 0; off += len) {
      const m = decodeMessage(wire.subarray(off, off + len), o);
      if (m.type === MsgType.UPDATE) rib.applyUpdate(PEER, interpretUpdate(m as UpdateMessage, o).families);
    }
    rib.flush();
    for (let b: FibBatch; (b = rib.takeFib(2048)).keys.length; ) {
      kernel?.(b);
      n += b.keys.length;
    }
  }
  return n;
}
