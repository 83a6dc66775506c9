/**
 * Whole-session fuzzing (issue 14 §1), bounded in time so it runs in CI:
 * scripted peers open sessions to a Tern speaker and send random bytes,
 * mutated valid OPENs and UPDATEs, and random message sequences, while a
 * stable peer keeps its session. At the end the process is alive, the stable
 * session never dropped, and the Loc-RIB and the kernel agree route by route.
 *
 * TERN_FUZZ_SECONDS (default 20) and TERN_FUZZ_SEED (default: time) replay a run.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, peerState, type TernNode } from './harness';
import { ScriptPeer, attrs } from './script-peer';
import { buildOpen, encodeMessage, IPV4_UNICAST, IPV6_UNICAST, type Attr, type Message } from '../../src/bgp-speaker/codec';
import { RTPROT_BGP } from '../../src/lib/constants';

/** BGP-learned routes carry the speaker's own mark. */
const BGP_PROTO = String(RTPROT_BGP);

const SECONDS = Number(process.env.TERN_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.TERN_FUZZ_SEED ?? Date.now() % 2 ** 31);
const TERN = '198.18.1.1';
const FUZZERS = [
  { address: '198.18.1.10', asn: 65010 },
  { address: '198.18.1.11', asn: 65001 }, // iBGP
  { address: '198.18.1.12', asn: 4200000012 },
];

const sb = new Sandbox('bgpfz');
let t: Netns;
let x: Netns;
let tern: TernNode;
let S: ScriptPeer;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rnd = prng(SEED);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(a: readonly T[]): T => a[int(a.length)];
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

const OPTS = { as4: true, extendedMessage: true };
const NEXT_HOPS = ['198.18.1.10', '198.18.1.20', '198.18.1.77', TERN, '0.0.0.0', '127.0.0.1', '203.0.113.5', '224.0.0.1'];

function randomPrefix(): string {
  const len = pick([16, 20, 23, 24, 24, 25, 28, 32]);
  return `10.${128 + int(4)}.${int(256)}.${int(256)}/${len}`;
}

function randomAttrs(asn: number): Attr[] {
  // iBGP peers send paths without their own AS; eBGP ones start with it.
  const path = Array.from({ length: pick([0, 1, 2, 5, 254, 255, 300]) }, (_, i) => (i === 0 ? asn : pick([65100 + int(50), 4200000000 + int(10)])));
  if (asn === 65001) path.shift();
  const out: Attr[] = [
    { kind: 'origin', flags: 0x40, origin: int(3) },
    { kind: 'as-path', flags: 0x40, segments: path.length ? [{ type: pick([2, 2, 2, 1, 3, 4]), asns: path }] : [] },
    { kind: 'next-hop', flags: 0x40, nextHop: pick(NEXT_HOPS) },
  ];
  if (rnd() < 0.3) out.push({ kind: 'med', flags: 0x80, med: int(1000) });
  if (rnd() < 0.3) out.push({ kind: 'local-pref', flags: 0x40, localPref: int(500) });
  if (rnd() < 0.3) out.push({ kind: 'communities', flags: 0xc0, communities: Array.from({ length: 1 + int(50) }, () => int(2 ** 32)) });
  if (rnd() < 0.2) out.push({ kind: 'large-communities', flags: 0xc0, communities: Array.from({ length: 1 + int(pick([5, 500])) }, () => [int(2 ** 32), int(2 ** 32), int(2 ** 32)] as [number, number, number]) });
  if (rnd() < 0.2) out.push({ kind: 'unknown', flags: pick([0xc0, 0x80, 0xd0]), code: pick([99, 200, 33]), data: bytes(pick([0, 3, 4, 40, 3000])) });
  if (rnd() < 0.1) out.push({ kind: 'unknown', flags: pick([0x40, 0x80]), code: pick([5, 9, 10]), data: bytes(pick([0, 3, 4, 5])) });
  if (rnd() < 0.1) out.push({ kind: 'mp-reach', flags: 0x80, afi: 2, safi: 1, nextHops: ['2001:db8::1'], reserved: 0, nlri: [{ prefix: '2001:db8:77::/48' }] });
  return out;
}

function validUpdate(asn: number): Buffer {
  const nlri = Array.from({ length: 1 + int(pick([3, 50, 400])) }, () => ({ prefix: randomPrefix() }));
  const withdrawn = rnd() < 0.3 ? Array.from({ length: 1 + int(20) }, () => ({ prefix: randomPrefix() })) : [];
  return encodeMessage({ type: 2, withdrawn, attrs: randomAttrs(asn), nlri }, OPTS);
}

/** Flip, overwrite, truncate, extend or re-length a valid message. */
function mutate(b: Buffer): Buffer {
  const m = Buffer.from(b);
  const kind = int(5);
  if (kind === 0) for (let i = 0, n = 1 + int(4); i < n; i++) m[19 + int(m.length - 19)] ^= 1 << int(8);
  else if (kind === 1) for (let i = 0, n = 1 + int(4); i < n; i++) m[int(m.length)] = int(256);
  else if (kind === 2) return fixLength(m.subarray(0, 19 + int(m.length - 19)));
  else if (kind === 3) return fixLength(Buffer.concat([m, bytes(1 + int(20))]));
  else m.writeUInt16BE(Math.max(19, m.length + int(9) - 4), 16);
  return m;
}
function fixLength(m: Buffer): Buffer {
  if (m.length >= 19 && m.length <= 65535) m.writeUInt16BE(m.length, 16);
  return m;
}

function randomMessage(asn: number): Buffer {
  const k = int(10);
  if (k < 4) return validUpdate(asn);
  if (k < 7) return mutate(validUpdate(asn));
  if (k === 7) return encodeMessage(pick<Message>([{ type: 4 }, { type: 5, afi: 1, subtype: int(3), safi: 1 }, { type: 5, afi: 7, subtype: 0, safi: 9 }]), OPTS);
  if (k === 8) return fixLength(Buffer.concat([Buffer.alloc(16, 0xff), Buffer.from([0, 0, int(8)]), bytes(int(60))]));
  return bytes(1 + int(100));
}

const ribRoutes = () => tern.ctl<{ prefix: string; best?: { nextHop: string; peer: string }; kernelError?: string }[]>('routes');
const kernel = () =>
  new Map(
    (['-4', '-6'] as const).flatMap((fam) =>
      t.ipJson<{ dst: string; gateway?: string }[]>(fam, 'route', 'show', 'proto', BGP_PROTO).map((r) => [r.dst.includes('/') ? r.dst : `${r.dst}/${fam === '-4' ? 32 : 128}`, r.gateway] as const),
    ),
  );

/** Wait for the kernel writes to finish, then compare every Loc-RIB route with the kernel; returns how many were compared. */
async function ribMatchesKernel(): Promise<number> {
  await waitFor(() => tern.ctl<{ fibPending: number }>('stats').fibPending === 0, { what: 'kernel writes done' });
  await new Promise((r) => setTimeout(r, 300));
  const rib = ribRoutes();
  const k = kernel();
  for (const r of rib) {
    if (!r.best || r.best.peer === 'local') continue;
    if (r.kernelError) expect(k.has(r.prefix), `${r.prefix} refused by the kernel (${r.kernelError}) but in it`).toBe(false);
    else expect(k.get(r.prefix), `${r.prefix}: RIB next hop ${r.best.nextHop}, kernel ${k.get(r.prefix)}`).toBe(r.best.nextHop);
  }
  for (const p of k.keys()) expect(rib.some((r) => r.prefix === p), `${p} in the kernel, not in the RIB`).toBe(true);
  return rib.length;
}

beforeAll(async () => {
  t = sb.netns('t');
  x = sb.netns('x');
  sb.link(t, 'eth0', x, 'eth0', { aAddr: `${TERN}/24`, bAddr: '198.18.1.2/24' });
  for (const f of FUZZERS) x.ip('addr', 'add', `${f.address}/24`, 'dev', 'eth0');
  tern = startTern(sb, t, sb.tmpdir(), 'tern', {
    asn: 65001, routerId: '198.18.0.1', holdTime: 9, connectRetryTime: 2, idleHoldTime: 1, installIntoKernel: true, families: ['ipv4', 'ipv6'],
    peers: [
      { address: '198.18.1.2', asn: 65020, passive: true, importPrefixes: ['10.0.0.0/8 le 32'], exportPrefixes: ['10.0.0.0/8 le 32'] },
      ...FUZZERS.map((f) => ({ ...f, passive: true, importPrefixes: ['0.0.0.0/0 le 32', '::/0 le 128'], exportPrefixes: ['0.0.0.0/0 le 32'] })),
    ],
  });
  await ternReady(tern);
  S = new ScriptPeer(x, '198.18.1.2');
  await S.up(TERN, { asn: 65020, routerId: '198.18.1.2', holdTime: 9 });
  await S.update({ attrs: attrs(65020, '198.18.1.2'), nlri: Array.from({ length: 50 }, (_, i) => `10.1.${i}.0/24`) });
  await waitFor(() => kernel().size >= 50, { what: "the stable peer's routes in the kernel" });
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) fs.writeFileSync('/tmp/hbgp-fuzz-debug.txt', tern.daemon.output());
  S?.stop();
  await sb.cleanup();
});

describe(`session fuzzing for ${SECONDS} s (seed ${SEED})`, () => {
  it('the process lives, the stable session stays up, and the RIB and the kernel agree', { timeout: (SECONDS + 60) * 1000 }, async () => {
    const fuzzers = FUZZERS.map((f) => ({ ...f, peer: new ScriptPeer(x, f.address) }));
    const stats = { sessions: 0, established: 0, messages: 0, checkpoints: 0, compared: 0 };
    const until = Date.now() + SECONDS * 1000;
    let checkpoint = Date.now() + 4000;
    try {
      while (Date.now() < until) {
        if (Date.now() > checkpoint) {
          // Mid-run, with fuzz sessions and their routes up: pause and compare.
          stats.compared += await ribMatchesKernel();
          stats.checkpoints++;
          checkpoint = Date.now() + 4000;
        }
        const f = pick(fuzzers);
        await f.peer.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
        try {
          await f.peer.connect(TERN);
        } catch {
          continue; // refused for now (e.g. the old connection is still closing)
        }
        stats.sessions++;
        const scenario = int(4);
        if (scenario === 0) {
          await f.peer.raw(bytes(1 + int(200)).toString('hex'));
        } else if (scenario === 1) {
          const open = buildOpen({ asn: f.asn, routerId: f.address, holdTime: pick([0, 1, 3, 9, 65535]), families: [IPV4_UNICAST, IPV6_UNICAST], addPathReceive: rnd() < 0.5 });
          await f.peer.raw(mutate(encodeMessage(open, OPTS)).toString('hex'));
        } else {
          await f.peer.open({ asn: f.asn, routerId: f.address, holdTime: 9, families: ['ipv4', 'ipv6'], gr: rnd() < 0.5 ? { restartTime: 5 } : undefined });
          await new Promise((r) => setTimeout(r, 30));
          if (f.peer.events.some((e) => e.type === 4)) stats.established++;
          for (let i = 0, n = 1 + int(scenario === 2 ? 5 : 40); i < n; i++) {
            await f.peer.raw(randomMessage(f.asn).toString('hex'));
            stats.messages++;
          }
        }
        await new Promise((r) => setTimeout(r, int(100)));
      }
    } finally {
      for (const f of fuzzers) {
        await f.peer.close().catch(() => undefined);
        f.peer.stop();
      }
    }
    console.log(`fuzz seed ${SEED}: ${JSON.stringify(stats)}`);
    expect(stats.sessions).toBeGreaterThan(10);

    expect(tern.daemon.child.exitCode, tern.daemon.output().slice(-3000)).toBeNull();
    // The stable peer's session never dropped.
    expect(S.events.filter((e) => e.ev === 'closed' || e.type === 3)).toEqual([]);
    const s = peerState(tern, '198.18.1.2') as { state: string; uptimeSeconds?: number } | undefined;
    expect(s?.state).toBe('Established');
    // Quiet again: only the stable peer's routes remain, in the RIB and in the kernel alike.
    await waitFor(() => tern.ctl<{ fibPending: number }>('stats').fibPending === 0 && ribRoutes().length === 50, { timeoutMs: 20_000, what: 'the fuzzers\' routes gone' });
    expect(await ribMatchesKernel()).toBe(50);
    expect([...kernel().keys()].sort()).toEqual(ribRoutes().map((r) => r.prefix).sort());
  });

  it('while fuzz sessions are up with routes, the RIB and the kernel agree too', { timeout: 60_000 }, async () => {
    const f = new ScriptPeer(x, FUZZERS[0].address);
    try {
      await waitFor(async () => {
        try {
          await f.up(TERN, { asn: FUZZERS[0].asn, routerId: FUZZERS[0].address });
          return true;
        } catch {
          await f.close().catch(() => undefined);
          return false;
        }
      }, { timeoutMs: 20_000, what: 'fuzzer session' });
      // Well-formed but unusual UPDATEs (host bits, martian next hops, long paths, big attributes): the session stays.
      for (let i = 0; i < 30; i++) await f.raw(validUpdate(FUZZERS[0].asn).toString('hex'));
      await new Promise((r) => setTimeout(r, 1500));
      expect(f.notifications()).toEqual([]);
      expect(peerState(tern, FUZZERS[0].address)?.state).toBe('Established');
      expect(await ribMatchesKernel()).toBeGreaterThan(50);
    } finally {
      f.stop();
    }
  });
});
