/**
 * Graceful restart (RFC 4724) against BIRD 2: Tern restarting (BIRD helps,
 * kernel routes stay, stale ones swept after End-of-RIB) and Tern helping
 * while BIRD restarts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, startBird, peerState, kernelRoutes, type TernNode, type BirdNode } from './harness';

const sb = new Sandbox('bgpr');
let t: Netns;
let b: Netns;
let tern: TernNode;
let bird: BirdNode;
let dir: string;

const birdConf = (statics: string[]) => `
router id 198.18.0.2;
protocol device {}
protocol kernel k4 { ipv4 { import none; export all; }; }
protocol static s4 { ipv4; ${statics.map((s) => `route ${s} blackhole;`).join(' ')} }
protocol bgp tern {
  local 198.18.0.2 as 65002; neighbor 198.18.0.1 as 65001;
  hold time 9; connect retry time 2; error wait time 1, 5;
  graceful restart on; graceful restart time 60;
  ipv4 { import all; export where source = RTS_STATIC; };
}
`;
const ternConf = (routes: string[]) => ({
  asn: 65001,
  routerId: '198.18.0.1',
  holdTime: 9,
  connectRetryTime: 2,
  idleHoldTime: 1,
  installIntoKernel: true,
  gracefulRestart: { restartTime: 60 },
  families: ['ipv4'],
  routes,
  peers: [{ address: '198.18.0.2', asn: 65002, importPrefixes: ['10.20.0.0/16'], exportPrefixes: ['10.30.0.0/16'] }],
});
/** Routes BIRD learned from Tern, in BIRD's kernel (its statics are there too). */
const birdLearned = () => kernelRoutes(b, 4, 'bird').filter((p) => p.startsWith('10.30.'));
const established = () => peerState(tern, '198.18.0.2')?.state === 'Established';
const birdUp = () => /tern\s+BGP\s+\S+\s+up/.test(bird.birdc('show', 'protocols'));

beforeAll(async () => {
  t = sb.netns('t');
  b = sb.netns('b');
  sb.link(t, 'eth0', b, 'eth0', { aAddr: '198.18.0.1/24', bAddr: '198.18.0.2/24' });
  dir = sb.tmpdir();
  bird = startBird(sb, b, dir, 'bird', birdConf(['10.20.0.0/26', '10.20.0.64/26']));
  tern = startTern(sb, t, dir, 'tern', ternConf(['10.30.0.0/26', '10.30.0.64/26']));
  await ternReady(tern);
  await waitFor(() => established() && kernelRoutes(t, 4, '86').length === 2 && birdLearned().length === 2, { timeoutMs: 30_000, what: 'initial exchange' });
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) fs.writeFileSync('/tmp/hb-gr-debug.txt', tern.daemon.output() + '\n----\n' + bird.birdc('show', 'protocols', 'all') + bird.daemon.output());
  await sb.cleanup();
});

describe('graceful restart with BIRD', () => {
  it('Tern restarts: its kernel routes stay, BIRD keeps its routes, stale ones are swept after End-of-RIB', { timeout: 120_000 }, async () => {
    await tern.daemon.stop('SIGTERM');
    // BIRD notices the session is gone and helps: Tern's routes stay in BIRD's kernel.
    await waitFor(() => !birdUp(), { timeoutMs: 20_000, what: 'BIRD session down' });
    expect(birdLearned().sort()).toEqual(['10.30.0.0/26', '10.30.0.64/26']);
    // Tern's own kernel routes survive the restart.
    expect(kernelRoutes(t, 4, '86').sort()).toEqual(['10.20.0.0/26', '10.20.0.64/26']);
    // While Tern is down, BIRD stops announcing one route; Tern will come back announcing one fewer.
    fs.writeFileSync(bird.conf, birdConf(['10.20.0.0/26']));
    bird.birdc('configure');
    tern = startTern(sb, t, dir, 'tern', ternConf(['10.30.0.0/26']), ['--restarting']);
    await ternReady(tern);
    tern.ctl('ready'); // its whole table is the configuration's: End-of-RIB may follow
    await waitFor(established, { timeoutMs: 30_000, what: 're-established' });
    // Tern's mark and sweep removes the kernel route BIRD no longer has; BIRD sweeps ours.
    await waitFor(() => kernelRoutes(t, 4, '86').join() === '10.20.0.0/26', { timeoutMs: 30_000, what: `Tern kernel sweep (${kernelRoutes(t, 4, '86')})` });
    await waitFor(() => birdLearned().join() === '10.30.0.0/26', { timeoutMs: 30_000, what: `BIRD sweep (${birdLearned()})` });
  });

  it('BIRD restarts: Tern keeps its routes as stale, then refreshes them', { timeout: 120_000 }, async () => {
    bird.birdc('graceful', 'restart');
    await bird.daemon.stop('SIGTERM');
    await waitFor(() => !established(), { timeoutMs: 30_000, what: 'Tern session down' });
    const stale = tern.ctl<{ prefix: string; best?: { stale?: boolean } }[]>('routes', '10.20.0.0/26');
    expect(stale[0].best?.stale).toBe(true);
    expect(kernelRoutes(t, 4, '86')).toEqual(['10.20.0.0/26']);
    bird = startBird(sb, b, dir, 'bird', birdConf(['10.20.0.0/26']));
    await waitFor(established, { timeoutMs: 60_000, what: 're-established with BIRD' });
    await waitFor(() => tern.ctl<{ best?: { stale?: boolean } }[]>('routes', '10.20.0.0/26')[0]?.best?.stale !== true, { timeoutMs: 30_000, what: 'route refreshed' });
    expect(kernelRoutes(t, 4, '86')).toEqual(['10.20.0.0/26']);
  });

  it('Tern restarts and is fed by `ternctl bgp announce`: End-of-RIB waits for `ternctl bgp ready`, so BIRD never flushes those routes', { timeout: 120_000 }, async () => {
    const fed = Array.from({ length: 2000 }, (_, i) => `10.30.${128 + (i >> 4)}.${(i & 15) << 4}/28`);
    const file = `${dir}/fed.txt`;
    fs.writeFileSync(file, fed.join('\n'));
    const birdFed = () => b.ipJson<unknown[]>('-4', 'route', 'show', 'proto', 'bird', 'root', '10.30.128.0/17').length;
    tern.ctl('announce', '--file', file);
    await waitFor(() => birdFed() === 2000, { timeoutMs: 30_000, what: 'BIRD has the fed routes' });
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(birdFed());
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await tern.daemon.stop('SIGTERM');
    tern = startTern(sb, t, dir, 'tern', ternConf(['10.30.0.0/26']), ['--restarting']);
    await ternReady(tern);
    await waitFor(established, { timeoutMs: 30_000, what: 're-established' });
    await new Promise((r) => setTimeout(r, 2000)); // the feeding script is slow to start
    tern.ctl('announce', '--file', file);
    await new Promise((r) => setTimeout(r, 1000));
    sampling = false;
    await sampler;
    expect(Math.min(...samples), `BIRD's count of the fed routes during the restart (${samples.length} samples)`).toBe(2000);
    tern.ctl('ready');
    await waitFor(() => /tern\s+BGP\s+\S+\s+up/.test(bird.birdc('show', 'protocols')), { what: 'BIRD up' });
    await new Promise((r) => setTimeout(r, 1000)); // BIRD's sweep after End-of-RIB
    expect(birdFed()).toBe(2000);
    expect(birdLearned().filter((p) => !p.endsWith('/28'))).toEqual(['10.30.0.0/26']);
  });
});
