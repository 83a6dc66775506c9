/**
 * BFD against FRR 8's bfdd, both directions: zebra, bfdd and bgpd in the
 * peer namespace (bgpd registers its BFD session through zebra), 300 ms x 3.
 * A frozen FRR's routes leave Tern's kernel in under a second; a frozen
 * Tern is seen down by FRR's bfdd in under a second (bgpd, told through
 * zebra, drops the route a little later).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sandbox, sh, waitFor, type Netns, type Daemon } from '../sandbox';
import { startTern, ternReady, peerState, kernelRoutes, ternAndPeer, TERN_AT_T, type TernNode } from './harness';
import { RTPROT_BGP } from '../../src/lib/constants';

/** BGP-learned routes carry the speaker's own mark. */
const BGP_PROTO = String(RTPROT_BGP);

const sb = new Sandbox('bgpfbfd');
let t: Netns;
let f: Netns;
let tern: TernNode;
let frr: Daemon[] = [];
let dir: string;

const bgpdConf = `
router bgp 65004
 bgp router-id 198.18.0.4
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.18.0.1 remote-as 65001
 neighbor 198.18.0.1 timers 3 9
 neighbor 198.18.0.1 timers connect 2
 neighbor 198.18.0.1 bfd
 address-family ipv4 unicast
  network 10.70.0.0/26
 exit-address-family
`;
const bfddConf = `
bfd
 peer 198.18.0.1
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 !
!
`;

const vtysh = (daemon: string, cmd: string) => sh('vtysh', ['--vty_socket', dir, '-d', daemon, '-c', cmd]).stdout;
const frrHas = (prefix: string): boolean => {
  try {
    return prefix in ((JSON.parse(vtysh('bgpd', 'show bgp ipv4 unicast json')) as { routes?: object }).routes ?? {});
  } catch {
    return false;
  }
};
const tBfd = () => (peerState(tern, '198.18.0.4') as { bfd?: { state: string } } | undefined)?.bfd?.state;

async function timeUntil(gone: () => boolean, maxMs: number): Promise<number> {
  const t0 = Date.now();
  while (!gone()) {
    if (Date.now() - t0 > maxMs) return Infinity;
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}
const signal = (ds: Daemon[], sig: NodeJS.Signals) => ds.forEach((d) => process.kill(d.pid, sig));

beforeAll(async () => {
  ({ t, peer: f, dir } = ternAndPeer(sb, 'f', 4));
  fs.chmodSync(dir, 0o777); // zebra and bfdd drop to the frr user and write their sockets here
  fs.writeFileSync(path.join(dir, 'zebra.conf'), '');
  fs.writeFileSync(path.join(dir, 'bfdd.conf'), bfddConf);
  fs.writeFileSync(path.join(dir, 'bgpd.conf'), bgpdConf);
  const zsock = path.join(dir, 'zserv.api');
  const common = (name: string) => ['-f', path.join(dir, `${name}.conf`), '-i', path.join(dir, `${name}.pid`), '-z', zsock, '--vty_socket', dir, '--log', 'stdout'];
  frr.push(sb.daemon('/usr/lib/frr/zebra', common('zebra'), { netns: f }));
  await waitFor(() => fs.existsSync(zsock), { what: `zebra socket (${frr[0].output().slice(-1500)})` });
  frr.push(sb.daemon('/usr/lib/frr/bfdd', [...common('bfdd'), '--bfdctl', path.join(dir, 'bfdd.sock')], { netns: f }));
  frr.push(sb.daemon('/usr/lib/frr/bgpd', [...common('bgpd'), '-S'], { netns: f }));
  tern = startTern(sb, t, dir, 'tern', {
    ...TERN_AT_T,
    families: ['ipv4'],
    routes: ['10.30.0.0/26'],
    peers: [{ address: '198.18.0.4', asn: 65004, importPrefixes: ['10.70.0.0/16'], exportPrefixes: ['10.30.0.0/16'], bfd: { minRx: 300, minTx: 300, multiplier: 3 } }],
  });
  await ternReady(tern);
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) fs.writeFileSync('/tmp/hbgp-bfd-frr.txt', (tern?.daemon.output() ?? '') + frr.map((d) => d.output()).join('\n----\n'));
  for (const d of [...frr, ...(tern ? [tern.daemon] : [])]) {
    try {
      process.kill(d.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  await sb.cleanup();
});

const allUp = () =>
  waitFor(() => peerState(tern, '198.18.0.4')?.state === 'Established' && tBfd() === 'Up' && kernelRoutes(t, 4, BGP_PROTO).includes('10.70.0.0/26') && frrHas('10.30.0.0/26') && /Status:\s+up/.test(vtysh('bfdd', 'show bfd peers')), {
    timeoutMs: 40_000,
    what: `session and BFD up with FRR (tern bfd ${tBfd()}; ${vtysh('bfdd', 'show bfd peers').slice(0, 800)} ${frr.map((d) => d.output().slice(-500)).join('|')})`,
  });

describe('BFD with FRR bfdd, 300 ms x 3', () => {
  it('comes up', allUp, 60_000);

  it('frozen FRR: Tern removes its routes in under a second', async () => {
    await allUp();
    signal(frr, 'SIGSTOP');
    const ms = await timeUntil(() => !kernelRoutes(t, 4, BGP_PROTO).includes('10.70.0.0/26'), 15_000);
    signal(frr, 'SIGCONT');
    console.log(`FRR frozen: Tern removed its route after ${ms} ms`);
    // Not a timed test (times are printed and recorded): BFD, not FRR's hold time, removed it.
    expect(ms).toBeLessThan(3000);
  }, 60_000);

  it('frozen Tern: FRR\'s BFD goes down in under a second and bgpd drops the route soon after', async () => {
    await allUp();
    process.kill(tern.daemon.pid, 'SIGSTOP');
    const t0 = Date.now();
    let bfdDown: number | undefined;
    const ms = await timeUntil(() => {
      if (bfdDown === undefined && !/Status:\s+up/.test(vtysh('bfdd', 'show bfd peers'))) bfdDown = Date.now() - t0;
      return bfdDown !== undefined && !frrHas('10.30.0.0/26');
    }, 15_000);
    process.kill(tern.daemon.pid, 'SIGCONT');
    // Each vtysh poll takes tens of ms; bfdd -> zebra -> bgpd is FRR's own path.
    console.log(`Tern frozen: FRR's BFD down after ${bfdDown} ms, its route gone after ${ms} ms`);
    expect(bfdDown).toBeLessThan(3000);
    expect(ms).toBeLessThan(4000);
    await allUp();
  }, 60_000);
});
