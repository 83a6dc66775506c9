/**
 * A tiny libpcap reader and TCP stream reassembler for the recorded BGP
 * sessions in test/vectors/bgp (Ethernet, IPv4/IPv6, TCP). Test-only.
 */
import * as fs from 'node:fs';

export interface TcpStream {
  /** "src:port>dst:port" */
  flow: string;
  data: Buffer;
}

export function readTcpStreams(file: string): TcpStream[] {
  const f = fs.readFileSync(file);
  const magic = f.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && f.readUInt32BE(0) !== 0xa1b2c3d4 && f.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number) => (le ? f.readUInt32LE(o) : f.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`${file}: link type ${u32(20)}, want Ethernet`);
  const segs = new Map<string, { seq: number; data: Buffer }[]>();
  let off = 24;
  while (off + 16 <= f.length) {
    const incl = u32(off + 8);
    const pkt = f.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let p = 12;
    let etype = pkt.readUInt16BE(p);
    while (etype === 0x8100) {
      p += 4;
      etype = pkt.readUInt16BE(p);
    }
    p += 2;
    let src: string;
    let dst: string;
    let proto: number;
    let l4: number;
    let end: number;
    if (etype === 0x0800) {
      const ihl = (pkt[p] & 0xf) * 4;
      proto = pkt[p + 9];
      src = [...pkt.subarray(p + 12, p + 16)].join('.');
      dst = [...pkt.subarray(p + 16, p + 20)].join('.');
      end = p + pkt.readUInt16BE(p + 2);
      l4 = p + ihl;
    } else if (etype === 0x86dd) {
      proto = pkt[p + 6];
      src = pkt.subarray(p + 8, p + 24).toString('hex');
      dst = pkt.subarray(p + 24, p + 40).toString('hex');
      end = p + 40 + pkt.readUInt16BE(p + 4);
      l4 = p + 40;
    } else continue;
    if (proto !== 6) continue;
    const sport = pkt.readUInt16BE(l4);
    const dport = pkt.readUInt16BE(l4 + 2);
    const seq = pkt.readUInt32BE(l4 + 4);
    const doff = (pkt[l4 + 12] >> 4) * 4;
    const payload = pkt.subarray(l4 + doff, end);
    if (payload.length === 0) continue;
    const flow = `${src}:${sport}>${dst}:${dport}`;
    if (!segs.has(flow)) segs.set(flow, []);
    segs.get(flow)!.push({ seq, data: Buffer.from(payload) });
  }
  const out: TcpStream[] = [];
  for (const [flow, list] of segs) {
    const base = list[0].seq;
    const rel = list.map((s) => ({ at: (s.seq - base) >>> 0, data: s.data })).sort((a, b) => a.at - b.at);
    const parts: Buffer[] = [];
    let next = 0;
    for (const s of rel) {
      if (s.at + s.data.length <= next) continue; // retransmission
      if (s.at > next) throw new Error(`${flow}: gap in TCP stream at ${next}`);
      parts.push(s.data.subarray(next - s.at));
      next = s.at + s.data.length;
    }
    out.push({ flow, data: Buffer.concat(parts) });
  }
  return out;
}

/** Split a BGP byte stream into messages (each a slice of the stream buffer). */
export function splitBgp(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off + 19 <= data.length) {
    const len = data.readUInt16BE(off + 16);
    if (len < 19 || off + len > data.length) break;
    out.push(data.subarray(off, off + len));
    off += len;
  }
  if (off !== data.length) throw new Error(`trailing ${data.length - off} octets in BGP stream`);
  return out;
}
