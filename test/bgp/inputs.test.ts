/**
 * What a fabric sends on the first day (issue 14 §1), from scripted peers
 * that send what real daemons would not, with BIRD 2 (no Extended Message)
 * and a scripted Extended Message peer receiving what Tern passes on.
 *
 *   x: scripted peers A .2 (AS 65010), C .3 (65020), E .4 (65030), F .5 (65040)
 *      ── 198.18.1.0/24 ── t: Tern (AS 65001, id 198.18.0.1) ── 198.18.2.0/24 ── b: BIRD (65002)
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, type TernNode, type BirdNode } from './harness';
import { ScriptPeer, attrs } from './script-peer';
import { RTPROT_BGP } from '../../src/lib/constants';

/** BGP-learned routes carry the speaker's own mark. */
const BGP_PROTO = String(RTPROT_BGP);

const sb = new Sandbox('bgpin');
let t: Netns;
let x: Netns;
let b: Netns;
let tern: TernNode;
let bird: BirdNode;
let A: ScriptPeer;
let C: ScriptPeer;
const TERN = '198.18.1.1';
const ALL = ['10.0.0.0/8 le 32'];

const birdConf = `
router id 198.18.2.2;
protocol device {}
protocol kernel k4 { ipv4 { import none; export all; }; }
protocol bgp tern {
  local 198.18.2.2 as 65002; neighbor 198.18.2.1 as 65001;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export none; };
}
`;

/** Tern's kernel route for a prefix: its gateway, or undefined when there is none. */
function kernelVia(prefix: string): string | undefined {
  const r = t.ipJson<{ dst: string; gateway?: string }[]>('-4', 'route', 'show', 'proto', BGP_PROTO, 'exact', prefix);
  return r[0]?.gateway;
}
type Route = { prefix: string; best?: { nextHop: string }; kernelError?: string };
/** The Loc-RIB entry for exactly `prefix` (the full table is too much JSON once 1000 routes are in). */
function ribRoute(prefix: string): Route | undefined {
  try {
    return tern.ctl<Route[]>('routes', prefix)[0];
  } catch (e) {
    if (/no route for/.test((e as Error).message)) return undefined;
    throw e;
  }
}
const ribHas = (prefix: string) => ribRoute(prefix) !== undefined;
const birdRoutes = (prefix: string) => bird.birdc('show', 'route', 'for', prefix);
const birdUp = () => /tern\s+BGP\s+\S+\s+up/.test(bird.birdc('show', 'protocols'));
const allUp = () => ['198.18.1.2', '198.18.1.3', '198.18.2.2'].every((a) => peerState(tern, a)?.state === 'Established');

/** Send `marker` after the UPDATEs under test and wait until C has it: whatever Tern did with the earlier ones is done. */
async function settle(marker: string): Promise<void> {
  await A.update({ attrs: attrs(65010, '198.18.1.2'), nlri: [marker] });
  await waitFor(() => C.routes().has(marker), { what: `${marker} at C` });
}

beforeAll(async () => {
  t = sb.netns('t');
  x = sb.netns('x');
  b = sb.netns('b');
  sb.link(t, 'eth0', x, 'eth0', { aAddr: `${TERN}/24`, bAddr: '198.18.1.2/24' });
  for (const h of [3, 4, 5]) x.ip('addr', 'add', `198.18.1.${h}/24`, 'dev', 'eth0');
  sb.link(t, 'eth1', b, 'eth0', { aAddr: '198.18.2.1/24', bAddr: '198.18.2.2/24' });
  const dir = sb.tmpdir();
  bird = startBird(sb, b, dir, 'bird', birdConf);
  tern = startTern(sb, t, dir, 'tern', {
    asn: 65001, routerId: '198.18.0.1', holdTime: 9, connectRetryTime: 2, idleHoldTime: 1, installIntoKernel: true, families: ['ipv4'],
    gracefulRestart: { restartTime: 120 },
    peers: [
      { address: '198.18.1.2', asn: 65010, passive: true, importPrefixes: ALL },
      { address: '198.18.1.3', asn: 65020, passive: true, exportPrefixes: ALL },
      { address: '198.18.1.4', asn: 65030, passive: true },
      { address: '198.18.1.5', asn: 65040, passive: true, importPrefixes: ALL },
      { address: '198.18.2.2', asn: 65002, exportPrefixes: ALL },
    ],
  });
  await ternReady(tern);
  A = new ScriptPeer(x, '198.18.1.2');
  C = new ScriptPeer(x, '198.18.1.3');
  await A.up(TERN, { asn: 65010, routerId: '198.18.1.2' });
  await C.up(TERN, { asn: 65020, routerId: '198.18.1.3' });
  await waitFor(() => allUp() && birdUp(), { timeoutMs: 30_000, what: 'sessions up' });
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) fs.writeFileSync('/tmp/hbgp-inputs-debug.txt', tern.daemon.output());
  for (const p of [A, C]) p?.stop();
  await sb.cleanup();
});

describe('inputs that broke the speaker (issue 14 §1)', () => {
  it('a prefix with host bits set (10.77.1.0/23) is 10.77.0.0/23 in the RIB, the kernel and on the wire (RFC 4271 §4.3)', async () => {
    await A.update({ attrs: attrs(65010, '198.18.1.2'), nlri: ['10.77.1.0/23'] });
    await waitFor(() => kernelVia('10.77.0.0/23') === '198.18.1.2', { what: `10.77.0.0/23 in the kernel (${tern.daemon.output().slice(-1500)})` });
    await waitFor(() => C.routes().has('10.77.0.0/23'), { what: '10.77.0.0/23 at C' });
    await waitFor(() => birdRoutes('10.77.0.0/23').includes('10.77.0.0/23'), { what: '10.77.0.0/23 at BIRD' });
    expect(tern.ctl<Route[]>('routes').map((r) => r.prefix)).not.toContain('10.77.1.0/23'); // the table is still small here
    expect([...C.routes().keys()]).not.toContain('10.77.1.0/23');
    // A withdrawal with the same host bits names the same route.
    await A.update({ withdrawn: ['10.77.1.0/23'] });
    await waitFor(() => kernelVia('10.77.0.0/23') === undefined && !C.routes().has('10.77.0.0/23'), { what: '10.77.0.0/23 withdrawn' });
  });

  it('NEXT_HOP 0.0.0.0 or our own address: the route is ignored, logged, and what came before is withdrawn (RFC 4271 §6.3)', async () => {
    await A.update({ attrs: attrs(65010, '198.18.1.2'), nlri: ['10.5.2.0/24'] });
    await waitFor(() => C.routes().has('10.5.2.0/24') && kernelVia('10.5.2.0/24') === '198.18.1.2', { what: '10.5.2.0/24 learned' });
    await A.update({ attrs: attrs(65010, TERN), nlri: ['10.5.0.0/24', '10.5.2.0/24'] });
    await A.update({ attrs: attrs(65010, '0.0.0.0'), nlri: ['10.5.1.0/24'] });
    await settle('10.5.9.0/24');
    await waitFor(() => !C.routes().has('10.5.2.0/24') && kernelVia('10.5.2.0/24') === undefined, { what: '10.5.2.0/24 withdrawn' });
    for (const p of ['10.5.0.0/24', '10.5.1.0/24', '10.5.2.0/24']) {
      expect(ribHas(p), p).toBe(false);
      expect(kernelVia(p), p).toBeUndefined();
      expect(C.routes().has(p), p).toBe(false);
    }
    expect(A.notifications()).toEqual([]); // §6.3: no NOTIFICATION
    expect(tern.daemon.output()).toMatch(/semantically incorrect NEXT_HOP/);
  });

  it('a next hop the kernel refuses: the old one does not stay in the kernel, the refusal shows, and a retry installs it once reachable', async () => {
    await A.update({ attrs: attrs(65010, '198.18.1.2'), nlri: ['10.6.0.0/24'] });
    await waitFor(() => kernelVia('10.6.0.0/24') === '198.18.1.2', { what: '10.6.0.0/24 installed' });
    await A.update({ attrs: attrs(65010, '203.0.113.9'), nlri: ['10.6.0.0/24'] }); // no route to it: ENETUNREACH
    const r = await waitFor(() => (ribRoute('10.6.0.0/24')?.kernelError ? ribRoute('10.6.0.0/24') : undefined), { what: 'kernel refusal shown' });
    expect(r.best?.nextHop).toBe('203.0.113.9');
    expect(r.kernelError).toMatch(/errno 101/);
    expect(kernelVia('10.6.0.0/24')).toBeUndefined(); // not the old 198.18.1.2
    expect(tern.ctl<{ fibFailed: number }>('stats').fibFailed).toBe(1);
    t.ip('route', 'add', '203.0.113.0/24', 'via', '198.18.1.2');
    await waitFor(() => kernelVia('10.6.0.0/24') === '198.18.1.2', { timeoutMs: 15_000, what: 'retried after the next hop became reachable' });
    await waitFor(() => !ribRoute('10.6.0.0/24')?.kernelError, { what: 'refusal cleared' });
    expect(tern.ctl<{ fibFailed: number }>('stats').fibFailed).toBe(0);
  });

  it('a malformed LOCAL_PREF from an eBGP peer is discarded, the route kept (RFC 7606 §7.5)', async () => {
    await A.update({ attrs: attrs(65010, '198.18.1.2', [{ kind: 'unknown', flags: 0x40, code: 5, data: '000064' }]), nlri: ['10.9.0.0/24'] });
    await waitFor(() => kernelVia('10.9.0.0/24') === '198.18.1.2', { what: '10.9.0.0/24 installed' });
    await waitFor(() => C.routes().has('10.9.0.0/24'), { what: '10.9.0.0/24 passed on' });
  });

  it('confederation segments from an eBGP peer outside any confederation: treat-as-withdraw (RFC 5065 §5, RFC 7606 §7.2)', async () => {
    const confed = [{ kind: 'origin', flags: 0x40, origin: 0 }, { kind: 'as-path', flags: 0x40, segments: [{ type: 3, asns: [65099] }, { type: 2, asns: [65010] }] }, { kind: 'next-hop', flags: 0x40, nextHop: '198.18.1.2' }];
    await A.update({ attrs: attrs(65010, '198.18.1.2'), nlri: ['10.10.1.0/24'] });
    await waitFor(() => C.routes().has('10.10.1.0/24'), { what: '10.10.1.0/24 at C' });
    await A.update({ attrs: confed, nlri: ['10.10.0.0/24', '10.10.1.0/24'] });
    await settle('10.10.9.0/24');
    expect(ribHas('10.10.0.0/24')).toBe(false);
    expect(ribHas('10.10.1.0/24')).toBe(false); // the earlier route is withdrawn too
    expect(C.routes().has('10.10.0.0/24')).toBe(false);
    expect(A.notifications()).toEqual([]);
  });

  it('prepending to a 255-AS AS_SEQUENCE starts a new segment (RFC 4271 §5.1.2)', async () => {
    const path = [65010, ...Array.from({ length: 254 }, (_, i) => 1000 + i)];
    await A.update({ attrs: attrs(path, '198.18.1.2'), nlri: ['10.3.0.0/24'] });
    const got = await waitFor(() => C.routes().get('10.3.0.0/24'), { what: `10.3.0.0/24 at C (${JSON.stringify(C.updates().slice(-2))})` });
    expect(got.segments).toEqual([{ type: 2, n: 1, first: 65001 }, { type: 2, n: 255, first: 65010 }]);
    await waitFor(() => birdRoutes('10.3.0.0/24').includes('10.3.0.0/24'), { what: '10.3.0.0/24 at BIRD' });
    expect(allUp() && birdUp()).toBe(true);
  });

  it('an UPDATE too long for a peer without Extended Message: split where it can be, a route that cannot fit is not sent and logged (RFC 8654 §4)', async () => {
    const big = (n: number) => ({ kind: 'large-communities', flags: 0xc0, communities: Array.from({ length: n }, (_, i) => [65010, i, 0]) });
    const birdSince = peerState(tern, '198.18.2.2')!;
    // One route whose attributes alone are about 4.8 kB.
    const len = await A.update({ attrs: attrs(65010, '198.18.1.2', [big(400)]), nlri: ['10.2.0.0/24'] });
    expect(len).toBeGreaterThan(4096);
    // 1000 routes sharing 2.4 kB of attributes, 6.4 kB in one Extended Message: split for BIRD.
    const many = Array.from({ length: 1000 }, (_, i) => `10.21.${i >> 4}.${(i & 15) << 4}/28`);
    expect(await A.update({ attrs: attrs(65010, '198.18.1.2', [big(200)]), nlri: many })).toBeGreaterThan(4096);
    await waitFor(() => C.routes().has('10.2.0.0/24'), { what: 'the long route at C (Extended Message)' });
    await waitFor(() => b.ipJson<unknown[]>('-4', 'route', 'show', 'proto', 'bird', 'root', '10.21.0.0/16').length === 1000, { timeoutMs: 20_000, what: 'the 1000 routes at BIRD' });
    expect(birdRoutes('10.2.0.0/24')).not.toContain('10.2.0.0/24');
    expect(tern.daemon.output()).toMatch(/routes not sent: their attributes do not fit/);
    const now = peerState(tern, '198.18.2.2')!;
    expect(now.state).toBe('Established');
    expect(now.lastError ?? '').not.toMatch(/NOTIFICATION/);
    expect(now.lastError).toBe(birdSince.lastError);
    expect(birdUp()).toBe(true);
  });

  it('an eBGP peer with our own router ID comes up (RFC 6286 §2.2)', async () => {
    const E = new ScriptPeer(x, '198.18.1.4');
    try {
      await E.up(TERN, { asn: 65030, routerId: '198.18.0.1' });
      await waitFor(() => peerState(tern, '198.18.1.4')?.state === 'Established', { what: 'E established' });
    } finally {
      E.stop();
    }
  });

  it('a restarted peer back without graceful restart, or with F=0, has its stale routes flushed at once (RFC 4724 §4.2)', async () => {
    const F = new ScriptPeer(x, '198.18.1.5');
    try {
      for (const back of [{ gr: { forwarding: false } }, {}]) {
        await F.up(TERN, { asn: 65040, routerId: '198.18.1.5', gr: { restartTime: 120 } });
        await F.update({ attrs: attrs(65040, '198.18.1.5'), nlri: ['10.8.0.0/24', '10.8.1.0/24'] });
        await waitFor(() => kernelVia('10.8.1.0/24') === '198.18.1.5', { what: '10.8.x learned from F' });
        await F.close(); // TCP gone, no NOTIFICATION: Tern helps and keeps them, stale
        await waitFor(() => peerState(tern, '198.18.1.5')?.state !== 'Established', { what: 'F down' });
        expect(kernelVia('10.8.0.0/24')).toBe('198.18.1.5');
        await F.up(TERN, { asn: 65040, routerId: '198.18.1.5', ...back });
        const t0 = Date.now();
        await waitFor(() => kernelVia('10.8.0.0/24') === undefined && kernelVia('10.8.1.0/24') === undefined, { timeoutMs: 5000, what: `stale routes flushed (back with ${JSON.stringify(back)})` });
        expect(Date.now() - t0).toBeLessThan(2000);
        expect(ribHas('10.8.0.0/24')).toBe(false);
        await F.close();
        await waitFor(() => peerState(tern, '198.18.1.5')?.state !== 'Established', { what: 'F down' });
      }
    } finally {
      F.stop();
    }
  });

  it('a 65,535-octet UPDATE from an Extended Message peer: the process lives, the route goes nowhere it cannot fit, other routes flow', async () => {
    // ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 + unknown optional transitive (4 + N) + header 19 + lengths 4 + NLRI 4 = 65535.
    const N = 65535 - 51;
    const len = await A.update({ attrs: attrs(65010, '198.18.1.2', [{ kind: 'unknown', flags: 0xd0, code: 99, data: 'ab'.repeat(N) }]), nlri: ['10.1.0.0/24'] });
    expect(len).toBe(65535);
    await settle('10.1.1.0/24');
    await waitFor(() => birdRoutes('10.1.1.0/24').includes('10.1.1.0/24'), { what: '10.1.1.0/24 at BIRD' });
    expect(tern.daemon.child.exitCode).toBeNull();
    expect(kernelVia('10.1.0.0/24')).toBe('198.18.1.2'); // Tern uses the route itself
    expect(C.routes().has('10.1.0.0/24')).toBe(false); // with our AS prepended it no longer fits 65,535 octets
    expect(birdRoutes('10.1.0.0/24')).not.toContain('10.1.0.0/24');
    expect(allUp() && birdUp()).toBe(true);
  });
});
