/**
 * TTL handling against a real BIRD, with a router namespace between them:
 *   - eBGP two hops away comes up with `multihop: 2` on both sides;
 *   - without it Tern sends with TTL 1, as BIRD, GoBGP and FRR do for eBGP,
 *     and its packets die at the router: no session;
 *   - GTSM (RFC 5082) on a direct link comes up (TTL 255 both ways);
 *   - GTSM expecting a direct neighbour refuses one two hops away, whose
 *     packets arrive with TTL 254.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, configuredPeer, birdBgpState, kernelRoutes, TERN_AT_T, type TernNode, type BirdNode } from './harness';

const sb = new Sandbox('bgpttl');
let t: Netns;
let tern: TernNode;
let bird: BirdNode;

const proto = (name: string, local: string, neighbor: string, asn: number, extra: string) => `
protocol bgp ${name} {
  local ${local} as ${asn}; neighbor ${neighbor} as 65001; ${extra}
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export where source = RTS_STATIC; };
}`;

beforeAll(async () => {
  t = sb.netns('t');
  const r = sb.netns('r');
  const b = sb.netns('b');
  sb.link(t, 'eth0', r, 'eth0', { aAddr: '198.18.11.1/24', bAddr: '198.18.11.254/24' });
  sb.link(r, 'eth1', b, 'eth0', { aAddr: '198.18.12.254/24', bAddr: '198.18.12.2/24' });
  sb.link(t, 'eth1', b, 'eth1', { aAddr: '198.18.13.1/24', bAddr: '198.18.13.2/24' });
  r.sysctl('net.ipv4.ip_forward', '1');
  t.ip('route', 'add', '198.18.12.0/24', 'via', '198.18.11.254');
  b.ip('route', 'add', '198.18.11.0/24', 'via', '198.18.12.254');
  for (const a of ['198.18.12.3', '198.18.12.4']) b.ip('addr', 'add', `${a}/24`, 'dev', 'eth0');
  const dir = sb.tmpdir();
  bird = startBird(sb, b, dir, 'bird', `
router id 198.18.12.2;
protocol device {}
protocol static s4 { ipv4; route 10.112.0.0/26 blackhole; }
${proto('hop2', '198.18.12.2', '198.18.11.1', 65002, 'multihop 2;')}
${proto('hop1', '198.18.12.3', '198.18.11.1', 65003, 'multihop 2;')}
${proto('gtsm', '198.18.13.2', '198.18.13.1', 65004, 'ttl security on;')}
${proto('gtsmfar', '198.18.12.4', '198.18.11.1', 65005, 'multihop 2; ttl security on;')}
`);
  tern = startTern(sb, t, dir, 'tern', {
    ...TERN_AT_T,
    routerId: '198.18.11.1',
    routes: ['10.111.0.0/26'],
    peers: [
      { address: '198.18.12.2', asn: 65002, multihop: 2, importPrefixes: ['10.112.0.0/16 le 26'], exportPrefixes: ['10.111.0.0/16 le 26'] },
      { address: '198.18.12.3', asn: 65003 },
      { address: '198.18.13.2', asn: 65004, ttlSecurity: true },
      { address: '198.18.12.4', asn: 65005, ttlSecurity: true },
    ],
  });
  await ternReady(tern);
});

afterAll(() => sb.cleanup());

describe('BGP TTL: multihop and GTSM with BIRD', () => {
  it('eBGP two hops away with multihop 2: Established, routes both ways', async () => {
    await waitFor(() => peerState(tern, '198.18.12.2')?.state === 'Established', { timeoutMs: 30_000, what: `multihop session (${tern.daemon.output().slice(-1500)})` });
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.112.0.0/26') || undefined, { what: 'BIRD route in Tern kernel' });
    // The BGP next hop (BIRD, two hops away) is resolved through the router, as BIRD's `gateway recursive` does.
    expect(t.ipJson('route', 'show', '10.112.0.0/26')[0]).toMatchObject({ gateway: '198.18.11.254', protocol: '86' });
    await waitFor(() => /10\.111\.0\.0\/26/.test(bird.birdc('show', 'route', 'protocol', 'hop2')) || undefined, { what: 'Tern route in BIRD' });
  });

  it('a recursive next hop follows the underlay when it moves, with no BGP change', async () => {
    expect(t.ipJson('route', 'show', '10.112.0.0/26')[0]).toMatchObject({ gateway: '198.18.11.254' });
    // BIRD's address is now reached over the direct link instead of through the router.
    t.ip('route', 'replace', '198.18.12.0/24', 'via', '198.18.13.2');
    try {
      await waitFor(() => t.ipJson('route', 'show', '10.112.0.0/26')[0]?.gateway === '198.18.13.2' || undefined, { timeoutMs: 10_000, what: `kernel route follows (${JSON.stringify(t.ipJson('route', 'show', '10.112.0.0/26'))})` });
    } finally {
      t.ip('route', 'replace', '198.18.12.0/24', 'via', '198.18.11.254');
    }
    await waitFor(() => t.ipJson('route', 'show', '10.112.0.0/26')[0]?.gateway === '198.18.11.254' || undefined, { timeoutMs: 10_000, what: 'and back' });
  });

  it('GTSM on a direct link: Established', async () => {
    await waitFor(() => peerState(tern, '198.18.13.2')?.state === 'Established', { timeoutMs: 30_000, what: 'GTSM session' });
    expect(bird.birdc('show', 'protocols')).toMatch(/gtsm\s+BGP\s+\S+\s+up/);
  });

  it('single-hop eBGP (the default) to a peer two hops away, and GTSM expecting a direct neighbour: no session', async () => {
    await new Promise((r) => setTimeout(r, 8000)); // several attempts from both sides
    // Both speakers are alive and have each peer configured, so "no session" means the TTL.
    for (const a of ['198.18.12.3', '198.18.12.4']) {
      const p = configuredPeer(tern, a);
      expect(p.state, a).not.toBe('Established');
      expect(p.received, a).toBe(0);
    }
    for (const proto of ['hop1', 'gtsmfar']) {
      const b = birdBgpState(bird, proto);
      expect(b.up, proto).toBe(false);
      expect(b.opened, `${proto}: BIRD received an OPEN`).toBe(false);
    }
  });
});
