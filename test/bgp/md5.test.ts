/**
 * TCP MD5 signatures (RFC 2385) against a real BIRD: Tern dials a BIRD that
 * requires a key, and BIRD dials a passive Tern that requires one. A wrong
 * key never gets a session: the kernel drops the unsigned or badly signed
 * SYNs before either speaker sees a byte.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, configuredPeer, birdBgpState, kernelRoutes, TERN_AT_T, addV6, type TernNode, type BirdNode } from './harness';

const sb = new Sandbox('bgpm');
let t: Netns;
let tern: TernNode;
let bird: BirdNode;

// BIRD (b) 198.18.9.2: session "active" is dialed by Tern (BIRD passive); "passive" dials Tern (Tern passive); "wrong" has a key Tern does not share.
const birdConf = `
router id 198.18.9.2;
protocol device {}
protocol kernel k4 { ipv4 { import none; export all; }; }
protocol static s4 { ipv4; route 10.92.0.0/26 blackhole; }
protocol bgp active {
  local 198.18.9.2 as 65002; neighbor 198.18.9.1 as 65001; passive on; password "s3cret-one";
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export where source = RTS_STATIC; };
}
protocol bgp passive6 {
  local 2001:9::2 as 65002; neighbor 2001:9::1 as 65001; password "s3cret-two";
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export where source = RTS_STATIC; };
}
protocol bgp wrong {
  local 198.18.10.2 as 65003; neighbor 198.18.10.1 as 65001; password "not-the-key";
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export none; };
}
`;

beforeAll(async () => {
  t = sb.netns('t');
  const b = sb.netns('b');
  sb.link(t, 'eth0', b, 'eth0', { aAddr: '198.18.9.1/24', bAddr: '198.18.9.2/24' });
  t.ip('addr', 'add', '198.18.10.1/24', 'dev', 'eth0');
  b.ip('addr', 'add', '198.18.10.2/24', 'dev', 'eth0');
  addV6(t, 'eth0', '2001:9::1/64');
  addV6(b, 'eth0', '2001:9::2/64');
  const dir = sb.tmpdir();
  bird = startBird(sb, b, dir, 'bird', birdConf);
  tern = startTern(sb, t, dir, 'tern', {
    ...TERN_AT_T,
    routerId: '198.18.9.1',
    routes: ['10.91.0.0/26'],
    peers: [
      { address: '198.18.9.2', asn: 65002, password: 's3cret-one', importPrefixes: ['10.92.0.0/16 le 26'], exportPrefixes: ['10.91.0.0/16 le 26'] },
      { address: '2001:9::2', asn: 65002, passive: true, password: 's3cret-two', importPrefixes: ['10.92.0.0/16 le 26'], exportPrefixes: ['10.91.0.0/16 le 26'] },
      { address: '198.18.10.2', asn: 65003, password: 'the-real-key' },
    ],
  });
  await ternReady(tern);
});

afterAll(() => sb.cleanup());

describe('TCP MD5 (RFC 2385) with BIRD', () => {
  it('Tern dials a BIRD that requires a key: Established, routes both ways', async () => {
    await waitFor(() => peerState(tern, '198.18.9.2')?.state === 'Established', { timeoutMs: 30_000, what: `MD5 session (${tern.daemon.output().slice(-2000)})` });
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.92.0.0/26') || undefined, { what: 'BIRD route in Tern kernel' });
    await waitFor(() => /10\.91\.0\.0\/26/.test(bird.birdc('show', 'route', 'protocol', 'active')) || undefined, { what: 'Tern route in BIRD' });
    // The negative test below relies on birdBgpState seeing an OPEN when there was one.
    expect(birdBgpState(bird, 'active')).toMatchObject({ up: true, bgpState: 'Established', opened: true });
  });

  it('BIRD dials a passive Tern over IPv6 with its own key: Established', async () => {
    await waitFor(() => peerState(tern, '2001:9::2')?.state === 'Established', { timeoutMs: 30_000, what: `passive MD5 session (${bird.birdc('show', 'protocols', 'all', 'passive6').slice(0, 1500)})` });
    expect(bird.birdc('show', 'protocols')).toMatch(/passive6\s+BGP\s+\S+\s+up/);
  });

  it('a wrong key gets no session in either direction, and no byte reaches either speaker', async () => {
    await new Promise((r) => setTimeout(r, 6000)); // several connect attempts from both sides
    // Both speakers are alive and have the peer configured, so "no session" means the key.
    const p = configuredPeer(tern, '198.18.10.2');
    expect(p.state).not.toBe('Established');
    expect(p.received).toBe(0);
    const b = birdBgpState(bird, 'wrong');
    expect(b.up).toBe(false);
    expect(b.bgpState).not.toBe('Established');
    expect(b.opened, 'BIRD received an OPEN').toBe(false);
  });

  it('the sessions really are signed: TCP MD5 option on the wire', () => {
    // tcpdump prints "md5" for TCP option 19 (it cannot verify it without the key).
    const r = t.exec('timeout', ['4', 'tcpdump', '-i', 'eth0', '-c', '2', '-nn', '-vv', 'tcp port 179 and host 198.18.9.2']);
    expect(r.stdout + r.stderr).toMatch(/md5/i);
  });
});
