/**
 * iBGP route reflection with BIRD 2 on one L2 segment: Tern reflects for
 * three BIRD clients, and is itself a client of a BIRD route reflector
 * (which also serves a fourth BIRD).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, kernelRoutes, type TernNode, type BirdNode } from './harness';

const sb = new Sandbox('bgprr');
let tern: TernNode;
const birds: Record<string, { ns: Netns; bird: BirdNode; addr: string }> = {};
let t: Netns;

const client = (addr: string, neighbor: string, prefix: string) => `
router id ${addr};
protocol device {}
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
protocol static { ipv4; route ${prefix} blackhole; }
protocol bgp up {
  local ${addr} as 65000; neighbor ${neighbor} as 65000;
  direct; hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export where source = RTS_STATIC; };
}
`;
const reflector = `
router id 198.19.0.20;
protocol device {}
protocol bgp tern { local 198.19.0.20 as 65000; neighbor 198.19.0.1 as 65000; rr client; direct; hold time 9; connect retry time 2; error wait time 1, 5; ipv4 { import all; export all; }; }
protocol bgp c4 { local 198.19.0.20 as 65000; neighbor 198.19.0.14 as 65000; rr client; direct; hold time 9; connect retry time 2; error wait time 1, 5; ipv4 { import all; export all; }; }
`;

beforeAll(async () => {
  const sw = sb.netns('sw');
  sw.ip('link', 'add', 'br0', 'type', 'bridge');
  sw.ip('link', 'set', 'br0', 'up');
  const attach = (name: string, addr: string): Netns => {
    const ns = sb.netns(name);
    sb.link(ns, 'eth0', sw, `p-${name}`, { aAddr: `${addr}/24` });
    sw.ip('link', 'set', `p-${name}`, 'master', 'br0');
    return ns;
  };
  t = attach('t', '198.19.0.1');
  const dir = sb.tmpdir();
  const specs: [string, string, string, string][] = [
    ['c1', '198.19.0.11', '198.19.0.1', '10.41.0.0/24'],
    ['c2', '198.19.0.12', '198.19.0.1', '10.42.0.0/24'],
    ['c3', '198.19.0.13', '198.19.0.1', '10.43.0.0/24'],
    ['c4', '198.19.0.14', '198.19.0.20', '10.44.0.0/24'],
  ];
  for (const [name, addr, neighbor, prefix] of specs) {
    const ns = attach(name, addr);
    birds[name] = { ns, addr, bird: startBird(sb, ns, dir, name, client(addr, neighbor, prefix)) };
  }
  const r = attach('r', '198.19.0.20');
  birds.r = { ns: r, addr: '198.19.0.20', bird: startBird(sb, r, dir, 'r', reflector) };
  tern = startTern(sb, t, dir, 'tern', {
    asn: 65000,
    routerId: '198.19.0.1',
    holdTime: 9,
    connectRetryTime: 2,
    idleHoldTime: 1,
    installIntoKernel: true,
    families: ['ipv4'],
    routes: ['10.30.0.0/24'],
    peers: [
      { address: '198.19.0.11', asn: 65000, routeReflectorClient: true },
      { address: '198.19.0.12', asn: 65000, routeReflectorClient: true },
      { address: '198.19.0.13', asn: 65000, routeReflectorClient: true },
      { address: '198.19.0.20', asn: 65000 },
    ],
  });
  await ternReady(tern);
  await waitFor(() => ['198.19.0.11', '198.19.0.12', '198.19.0.13', '198.19.0.20'].every((a) => peerState(tern, a)?.state === 'Established'), { timeoutMs: 40_000, what: `all sessions (${tern.daemon.output().slice(-2000)})` });
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) require('node:fs').writeFileSync('/tmp/hb-rr-debug.txt', tern.daemon.output() + '\n----\n' + birds.c1.bird.birdc('show', 'protocols', 'all') + birds.c1.bird.daemon.output());
  await sb.cleanup();
});

const show = (name: string, prefix: string) => birds[name].bird.birdc('show', 'route', 'for', prefix, 'all');

describe('Tern as route reflector for BIRD clients', () => {
  it('reflects each client route to the other clients with ORIGINATOR_ID and CLUSTER_LIST, next hop unchanged', async () => {
    await waitFor(() => kernelRoutes(birds.c2.ns, 4, 'bird').includes('10.41.0.0/24') && kernelRoutes(birds.c3.ns, 4, 'bird').includes('10.42.0.0/24'), { timeoutMs: 30_000, what: 'reflected routes in client kernels' });
    const out = show('c2', '10.41.0.0/24');
    expect(out).toMatch(/BGP.originator_id: 198.19.0.11/);
    expect(out).toMatch(/BGP.cluster_list: 198.19.0.1\b/);
    expect(out).toMatch(/BGP.next_hop: 198.19.0.11/);
    expect(birds.c2.ns.ipJson<{ gateway: string }[]>('route', 'show', '10.41.0.0/24')[0].gateway).toBe('198.19.0.11');
    // Not reflected back to the client it came from.
    expect(show('c1', '10.41.0.0/24')).not.toMatch(/BGP.originator_id/);
  });

  it('installs client routes into its own kernel and sends its own route with LOCAL_PREF and next hop self', async () => {
    await waitFor(() => ['10.41.0.0/24', '10.42.0.0/24', '10.43.0.0/24'].every((p) => kernelRoutes(t, 4, '86').includes(p)), { timeoutMs: 30_000, what: 'Tern kernel' });
    expect(t.ipJson<{ gateway: string }[]>('route', 'show', '10.43.0.0/24')[0].gateway).toBe('198.19.0.13');
    await waitFor(() => kernelRoutes(birds.c1.ns, 4, 'bird').includes('10.30.0.0/24'), { timeoutMs: 20_000, what: 'Tern route at c1' });
    const out = show('c1', '10.30.0.0/24');
    expect(out).toMatch(/BGP.local_pref: 100/);
    expect(out).toMatch(/BGP.next_hop: 198.19.0.1\b/);
  });
});

describe('Tern as route-reflector client behind BIRD', () => {
  it('learns routes reflected by BIRD, installs them, and reflects them on to its own clients only', async () => {
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.44.0.0/24'), { timeoutMs: 30_000, what: 'route from the BIRD reflector' });
    expect(t.ipJson<{ gateway: string }[]>('route', 'show', '10.44.0.0/24')[0].gateway).toBe('198.19.0.14');
    const [r] = tern.ctl<{ best: { peer: string } }[]>('routes', '10.44.0.0/24');
    expect(r.best.peer).toBe('198.19.0.20');
    await waitFor(() => kernelRoutes(birds.c1.ns, 4, 'bird').includes('10.44.0.0/24'), { timeoutMs: 20_000, what: 'at c1' });
    const out = show('c1', '10.44.0.0/24');
    expect(out).toMatch(/BGP.originator_id: 198.19.0.14/);
    expect(out).toMatch(/BGP.cluster_list: 198.19.0.1 198.19.0.20/);
    // Client routes go up to the BIRD reflector, which reflects them to its other client.
    await waitFor(() => kernelRoutes(birds.c4.ns, 4, 'bird').includes('10.41.0.0/24'), { timeoutMs: 20_000, what: 'client route at c4' });
    expect(show('c4', '10.41.0.0/24')).toMatch(/BGP.cluster_list: 198.19.0.20 198.19.0.1/);
  });
});
