import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTcpStreams, splitBgp } from './pcap';
import { decodeMessage, encodeMessage, negotiate, receiveOptions, interpretUpdate, capabilitiesOf, endOfRibFamily, type Message, type OpenMessage, type CodecOptions } from '../../src/bgp-speaker/codec';

const DIR = path.join(__dirname, '..', 'vectors', 'bgp');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.pcap'));

/** Decode a whole recorded session: OPENs first, then everything with the negotiated options. */
function decodeSession(file: string): { flow: string; raw: Buffer; msg: Message; opts: CodecOptions }[] {
  const streams = readTcpStreams(path.join(DIR, file)).filter((s) => s.flow.includes(':179>') || s.flow.endsWith(':179'));
  const out: { flow: string; raw: Buffer; msg: Message; opts: CodecOptions }[] = [];
  // Pair the two directions of each connection to negotiate options.
  const byConn = new Map<string, { flow: string; msgs: Buffer[] }[]>();
  for (const s of streams) {
    const [a, b] = s.flow.split('>');
    const key = [a, b].sort().join('|');
    if (!byConn.has(key)) byConn.set(key, []);
    byConn.get(key)!.push({ flow: s.flow, msgs: splitBgp(s.data) });
  }
  for (const dirs of byConn.values()) {
    const opens = dirs.map((d) => (d.msgs[0] ? (decodeMessage(d.msgs[0], { as4: false }) as OpenMessage) : undefined));
    for (let i = 0; i < dirs.length; i++) {
      const mine = opens[i];
      const theirs = opens[1 - i];
      // Reading what direction i sent: the receiver is the other side.
      const opts = mine && theirs ? receiveOptions(negotiate(theirs, mine)) : { as4: false };
      for (const raw of dirs[i].msgs) out.push({ flow: dirs[i].flow, raw, msg: decodeMessage(raw, opts), opts });
    }
  }
  return out;
}

describe('codec on recorded sessions', () => {
  it('has the captures', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
  });

  for (const file of files) {
    it(`${file}: every message decodes and re-encodes to the same bytes`, () => {
      const msgs = decodeSession(file);
      expect(msgs.length).toBeGreaterThan(3);
      for (const { raw, msg, opts } of msgs) {
        expect(encodeMessage(msg, opts).toString('hex')).toBe(raw.toString('hex'));
      }
    });

    it(`${file}: decodes from a slice of a larger pooled buffer`, () => {
      for (const { raw, msg, opts } of decodeSession(file)) {
        const pool = Buffer.alloc(raw.length + 37, 0xab);
        raw.copy(pool, 13);
        const slice = pool.subarray(13, 13 + raw.length);
        expect(decodeMessage(slice, opts)).toEqual(msg);
      }
    });
  }

  it('reads the capabilities of the default OPENs', () => {
    const opens = decodeSession('defaults-bird-gobgp.pcap').filter((m) => m.msg.type === 1);
    expect(opens).toHaveLength(2);
    const kinds = opens.map((o) => capabilitiesOf(o.msg as OpenMessage).map((c) => c.kind));
    expect(kinds.flat()).toEqual(expect.arrayContaining(['multiprotocol', 'route-refresh', 'four-octet-as']));
    // FRR puts each capability in its own optional parameter.
    const frr = decodeSession('frr-bird-v4.pcap').filter((m) => m.msg.type === 1 && (m.msg as OpenMessage).params.length > 1);
    expect(frr.length).toBe(1);
  });

  it('finds announcements and End-of-RIB in the UPDATE sessions', () => {
    const msgs = files.flatMap((f) => decodeSession(f)).filter((m) => m.msg.type === 2);
    const announced = new Set<string>();
    const withdrawn = new Set<string>();
    const eors = new Set<number>();
    for (const m of msgs) {
      const c = interpretUpdate(m.msg as never, m.opts);
      if (c.endOfRib !== undefined) eors.add(c.endOfRib);
      for (const f of c.families) {
        f.announce.forEach((n) => announced.add(n.prefix));
        f.withdraw.forEach((n) => withdrawn.add(n.prefix));
        if (f.announce.length) expect(f.attrs!.nextHop).toMatch(/^198\.18\.0\.|^2001:2::|^fe80:/);
      }
      if (endOfRibFamily(m.msg as never)) expect(c.endOfRib).toBeDefined();
    }
    expect([...announced].some((p) => p.includes(':'))).toBe(true);
    expect([...announced].some((p) => !p.includes(':'))).toBe(true);
    // The captures' withdrawals are End-of-RIB markers only; real withdrawals are covered by the unit tests.
    expect(withdrawn.size).toBe(0);
    expect(eors.size).toBeGreaterThan(0);
  });
});
