/**
 * BFD (RFC 5880/5881) against BIRD 2's bfd protocol, both directions, with
 * 300 ms x 3, side by side with a BIRD peer without BFD (hold time 6 s) in
 * the same run. A node "loses power" by being frozen (SIGSTOP): its links
 * stay up, it just stops talking. The time is measured on the surviving side
 * until the frozen node's routes are out of the kernel.
 *
 *   b1 (BIRD, BFD, 10.41.0.0/24) ── t (Tern) ── b2 (BIRD, no BFD, 10.42.0.0/24)
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, kernelRoutes, type TernNode, type BirdNode } from './harness';
import { RTPROT_BGP } from '../../src/lib/constants';

/** BGP-learned routes carry the speaker's own mark. */
const BGP_PROTO = String(RTPROT_BGP);

const sb = new Sandbox('bgpbfd');
let t: Netns;
let b1: Netns;
let b2: Netns;
let tern: TernNode;
let bird1: BirdNode;
let bird2: BirdNode;

const birdConf = (n: number, bfd: boolean) => `
router id 198.18.${n}.2;
protocol device {}
protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP; }; }
protocol static s4 { ipv4; route 10.4${n}.0.0/24 blackhole; }
${bfd ? 'protocol bfd { interface "eth0" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }' : ''}
protocol bgp tern {
  local 198.18.${n}.2 as 6500${n + 1}; neighbor 198.18.${n}.1 as 65001;
  hold time 6; connect retry time 2; error wait time 1, 5;
  ${bfd ? 'bfd on;' : ''}
  ipv4 { import all; export where source = RTS_STATIC; };
}
`;

type BfdRow = { bfd?: { state: string; detectionTime?: number } };
const birdBfdUp = () => /198\.18\.1\.1\s+eth0\s+Up/.test(bird1.birdc('show', 'bfd', 'sessions'));
const tBfd = () => (peerState(tern, '198.18.1.2') as BfdRow | undefined)?.bfd;

/** Milliseconds until `gone()` holds, polled every 10 ms, up to `maxMs`. */
async function timeUntil(gone: () => boolean, maxMs: number): Promise<number> {
  const t0 = Date.now();
  while (!gone()) {
    if (Date.now() - t0 > maxMs) return Infinity;
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

beforeAll(async () => {
  t = sb.netns('t');
  b1 = sb.netns('b1');
  b2 = sb.netns('b2');
  sb.link(t, 'eth1', b1, 'eth0', { aAddr: '198.18.1.1/24', bAddr: '198.18.1.2/24' });
  sb.link(t, 'eth2', b2, 'eth0', { aAddr: '198.18.2.1/24', bAddr: '198.18.2.2/24' });
  const dir = sb.tmpdir();
  bird1 = startBird(sb, b1, dir, 'bird1', birdConf(1, true));
  bird2 = startBird(sb, b2, dir, 'bird2', birdConf(2, false));
  tern = startTern(sb, t, dir, 'tern', {
    asn: 65001, routerId: '198.18.0.1', holdTime: 6, connectRetryTime: 2, idleHoldTime: 1, installIntoKernel: true, families: ['ipv4'],
    routes: ['10.40.0.0/24'],
    peers: [
      { address: '198.18.1.2', asn: 65002, importPrefixes: ['10.0.0.0/8 le 32'], exportPrefixes: ['10.40.0.0/16'], bfd: { minRx: 300, minTx: 300, multiplier: 3 } },
      { address: '198.18.2.2', asn: 65003, importPrefixes: ['10.0.0.0/8 le 32'], exportPrefixes: ['10.40.0.0/16'] },
    ],
  });
  await ternReady(tern);
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) fs.writeFileSync('/tmp/hbgp-bfd-debug.txt', tern.daemon.output() + '\n' + bird1.birdc('show', 'bfd', 'sessions'));
  for (const d of [tern.daemon, bird1.daemon, bird2.daemon]) {
    try {
      process.kill(d.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  await sb.cleanup();
});

async function allUp(): Promise<void> {
  await waitFor(
    () =>
      peerState(tern, '198.18.1.2')?.state === 'Established' &&
      peerState(tern, '198.18.2.2')?.state === 'Established' &&
      tBfd()?.state === 'Up' &&
      birdBfdUp() &&
      kernelRoutes(t, 4, BGP_PROTO).length === 2 &&
      kernelRoutes(b1, 4, 'bird').includes('10.40.0.0/24') &&
      kernelRoutes(b2, 4, 'bird').includes('10.40.0.0/24'),
    { timeoutMs: 40_000, what: `sessions, BFD and routes up (tern bfd ${JSON.stringify(tBfd())}, bird: ${bird1.birdc('show', 'bfd', 'sessions').trim()})` },
  );
}

describe('BFD with BIRD, 300 ms x 3', () => {
  it('comes up with BIRD and shows in `ternctl bgp peers`', async () => {
    await allUp();
    const bfd = tBfd()!;
    expect(bfd.state).toBe('Up');
    expect(bfd.detectionTime).toBe(900);
    expect((peerState(tern, '198.18.2.2') as BfdRow).bfd).toBeUndefined();
  }, 60_000);

  it('a frozen BIRD node: Tern removes its routes in under a second with BFD, after the hold time without', async () => {
    await allUp();
    process.kill(bird1.daemon.pid, 'SIGSTOP');
    process.kill(bird2.daemon.pid, 'SIGSTOP');
    const [withBfd, without] = await Promise.all([
      timeUntil(() => !t.ipJson<unknown[]>('-4', 'route', 'show', 'proto', BGP_PROTO, 'exact', '10.41.0.0/24').length, 15_000),
      timeUntil(() => !t.ipJson<unknown[]>('-4', 'route', 'show', 'proto', BGP_PROTO, 'exact', '10.42.0.0/24').length, 15_000),
    ]);
    console.log(`BIRD frozen: Tern's kernel lost its routes after ${withBfd} ms with BFD, ${without} ms without (hold time 6 s)`);
    process.kill(bird1.daemon.pid, 'SIGCONT');
    process.kill(bird2.daemon.pid, 'SIGCONT');
    // Not a timed test: the measured times are printed (and in BENCHMARKS.md). What must
    // hold on any machine is that BFD, not the 6 s hold time, took the routes away.
    expect(withBfd).toBeLessThan(without);
    expect(withBfd).toBeLessThan(3000);
    expect(without).toBeGreaterThan(2000);
    expect(peerState(tern, '198.18.1.2')?.lastError).toMatch(/6\/10: BFD down/);
    expect(tern.ctl<{ bfd?: { downs: number } }[]>('peers')[0].bfd?.downs).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a frozen Tern node: BIRD removes its routes in under a second with BFD, after the hold time without', async () => {
    await allUp();
    process.kill(tern.daemon.pid, 'SIGSTOP');
    const [withBfd, without] = await Promise.all([
      timeUntil(() => !kernelRoutes(b1, 4, 'bird').includes('10.40.0.0/24'), 15_000),
      timeUntil(() => !kernelRoutes(b2, 4, 'bird').includes('10.40.0.0/24'), 15_000),
    ]);
    console.log(`Tern frozen: BIRD's kernel lost its routes after ${withBfd} ms with BFD, ${without} ms without (hold time 6 s)`);
    process.kill(tern.daemon.pid, 'SIGCONT');
    // Not a timed test: the measured times are printed (and in BENCHMARKS.md). What must
    // hold on any machine is that BFD, not the 6 s hold time, took the routes away.
    expect(withBfd).toBeLessThan(without);
    expect(withBfd).toBeLessThan(3000);
    expect(without).toBeGreaterThan(2000);
    await allUp(); // and it all comes back
  }, 60_000);
});
