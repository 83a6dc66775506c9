/**
 * Tern against a real BIRD 2 in network namespaces: eBGP over IPv4 and IPv6,
 * routes both ways and into both kernels, withdrawals, session reset, and
 * hold-timer expiry after the link goes down.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, kernelRoutes, ternAndPeer, TERN_AT_T, type TernNode, type BirdNode } from './harness';

const sb = new Sandbox('bgpi');
let t: Netns;
let b: Netns;
let tern: TernNode;
let bird: BirdNode;
let dir: string;

const birdConf = `
router id 198.18.0.2;
protocol device {}
protocol kernel k4 { ipv4 { import none; export all; }; }
protocol kernel k6 { ipv6 { import none; export all; }; }
protocol static s4 { ipv4; route 10.20.0.0/26 blackhole; route 10.20.0.64/26 blackhole; route 192.168.99.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:20::/48 blackhole; }
protocol bgp tern4 {
  local 198.18.0.2 as 65002; neighbor 198.18.0.1 as 65001;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export where source = RTS_STATIC; };
}
protocol bgp tern6 {
  local 2001:2::2 as 65002; neighbor 2001:2::1 as 65001;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv6 { import all; export where source = RTS_STATIC; };
}
`;

beforeAll(async () => {
  ({ t, peer: b, dir } = ternAndPeer(sb, 'b', 2));
  bird = startBird(sb, b, dir, 'bird', birdConf);
  tern = startTern(sb, t, dir, 'tern', {
    ...TERN_AT_T,
    routes: ['10.30.0.0/26', '10.30.0.64/26', '2001:db8:30::/48'],
    peers: [
      { address: '198.18.0.2', asn: 65002, importPrefixes: ['10.20.0.0/16 le 26'], exportPrefixes: ['10.30.0.0/16'] },
      { address: '2001:2::2', asn: 65002, importPrefixes: ['2001:db8::/32'], exportPrefixes: ['2001:db8:30::/48'] },
    ],
  });
  await ternReady(tern);
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) console.log(tern.daemon.output().slice(-20000));
  await sb.cleanup();
});

describe('Tern <-> BIRD eBGP', () => {
  it('establishes IPv4 and IPv6 sessions', async () => {
    await waitFor(() => peerState(tern, '198.18.0.2')?.state === 'Established' && peerState(tern, '2001:2::2')?.state === 'Established', { timeoutMs: 30_000, what: `sessions (${tern.daemon.output().slice(-3000)})` });
    await waitFor(() => /tern4\s+BGP\s+\S+\s+up/.test(bird.birdc('show', 'protocols')) && /tern6\s+BGP\s+\S+\s+up/.test(bird.birdc('show', 'protocols')), { timeoutMs: 20_000, what: 'BIRD up' });
  });

  it('learns BIRD routes inside the import pools only and installs them with proto 86', async () => {
    await waitFor(() => kernelRoutes(t, 4, '86').length === 2 && kernelRoutes(t, 6, '86').length === 1, { timeoutMs: 20_000, what: 'kernel routes in t' });
    expect(kernelRoutes(t, 4, '86').sort()).toEqual(['10.20.0.0/26', '10.20.0.64/26']);
    expect(kernelRoutes(t, 6, '86')).toEqual(['2001:db8:20::/48']);
    const r4 = t.ipJson<{ gateway: string }[]>('route', 'show', '10.20.0.0/26');
    expect(r4[0].gateway).toBe('198.18.0.2');
    const r6 = t.ipJson<{ gateway: string }[]>('-6', 'route', 'show', '2001:db8:20::/48');
    expect(r6[0].gateway).toBe('2001:2::2');
    // 192.168.99.0/24 is outside the pools: filtered, counted.
    expect(peerState(tern, '198.18.0.2')).toMatchObject({ accepted: 2, received: 3 });
    const routes = tern.ctl<{ prefix: string; reason: string; best: { peer: string; asPath: string } }[]>('routes', '10.20.0.0/26');
    expect(routes[0]).toMatchObject({ prefix: '10.20.0.0/26', reason: 'only-path', best: { peer: '198.18.0.2', asPath: '65002' } });
  });

  it('announces Tern routes to BIRD, which installs them', async () => {
    await waitFor(() => kernelRoutes(b, 4, 'bird').includes('10.30.0.0/26') && kernelRoutes(b, 4, 'bird').includes('10.30.0.64/26') && kernelRoutes(b, 6, 'bird').includes('2001:db8:30::/48'), { timeoutMs: 20_000, what: 'BIRD kernel routes' });
    const out = bird.birdc('show', 'route', 'for', '10.30.0.0/26', 'all');
    expect(out).toMatch(/BGP.as_path: 65001/);
    expect(out).toMatch(/BGP.next_hop: 198.18.0.1/);
    expect(bird.birdc('show', 'route', 'for', '2001:db8:30::/48', 'all')).toMatch(/BGP.next_hop: 2001:2::1/);
    expect(peerState(tern, '198.18.0.2')!.sent).toBe(2);
  });

  it('announce and withdraw at run time reach BIRD', async () => {
    const f = path.join(dir, 'more.txt');
    fs.writeFileSync(f, '10.30.1.0/26\n# comment\n10.30.1.64/26\n');
    expect(tern.ctl('announce', '--file', f)).toEqual({ announced: 2 });
    await waitFor(() => kernelRoutes(b, 4, 'bird').includes('10.30.1.64/26'), { timeoutMs: 20_000, what: 'announced route at BIRD' });
    fs.writeFileSync(f, '10.30.1.0/26\n10.30.0.0/26\n');
    expect(tern.ctl('withdraw', '--file', f)).toEqual({ withdrawn: 2 });
    await waitFor(() => !kernelRoutes(b, 4, 'bird').includes('10.30.0.0/26') && !kernelRoutes(b, 4, 'bird').includes('10.30.1.0/26'), { timeoutMs: 20_000, what: 'withdrawal at BIRD' });
    expect(kernelRoutes(b, 4, 'bird')).toContain('10.30.1.64/26');
  });

  it('BIRD withdrawing a route removes it from Tern and the kernel', async () => {
    fs.writeFileSync(bird.conf, birdConf.replace(' route 10.20.0.64/26 blackhole;', ''));
    expect(bird.birdc('configure')).toMatch(/Reconfigured|Reconfiguration/);
    await waitFor(() => !kernelRoutes(t, 4, '86').includes('10.20.0.64/26'), { timeoutMs: 20_000, what: 'withdrawal in t' });
    expect(kernelRoutes(t, 4, '86')).toEqual(['10.20.0.0/26']);
    expect(tern.ctl<unknown[]>('routes').length).toBeGreaterThan(0);
  });

  it('session reset from BIRD: Tern sees the NOTIFICATION and re-establishes', async () => {
    bird.birdc('restart', 'tern4');
    await waitFor(() => peerState(tern, '198.18.0.2')?.lastError?.includes('received NOTIFICATION 6/'), { timeoutMs: 20_000, what: 'NOTIFICATION seen' });
    await waitFor(() => peerState(tern, '198.18.0.2')?.state === 'Established', { timeoutMs: 30_000, what: 're-established' });
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.20.0.0/26') && kernelRoutes(b, 4, 'bird').includes('10.30.1.64/26'), { timeoutMs: 20_000, what: 'routes back' });
  });

  it('hold timer expires after the link goes down; routes leave the kernel; recovers when it comes back', async () => {
    // With the link down no FIN or RST gets through: only the hold timer can notice.
    t.must('ip', ['link', 'set', 'eth0', 'down']);
    try {
      await waitFor(() => peerState(tern, '198.18.0.2')?.state !== 'Established', { timeoutMs: 30_000, what: 'session down' });
      const p = peerState(tern, '198.18.0.2')!;
      expect(p.lastError).toMatch(/NOTIFICATION 4\/0|hold timer/);
      // Gone from the RIB (the kernel drops routes over a down link by itself).
      await waitFor(() => !tern.ctl<{ prefix: string }[]>('routes').some((r) => r.prefix.startsWith('10.20.')), { timeoutMs: 10_000, what: 'routes removed from the RIB' });
    } finally {
      t.must('ip', ['link', 'set', 'eth0', 'up']);
    }
    await waitFor(() => peerState(tern, '198.18.0.2')?.state === 'Established', { timeoutMs: 60_000, what: 're-established after link up' });
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.20.0.0/26'), { timeoutMs: 20_000, what: 'routes back' });
  });
});
