/**
 * Tern against a real GoBGP in network namespaces: eBGP over IPv4 and IPv6,
 * routes both ways (GoBGP's into Tern's kernel), withdrawals, and reset.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sandbox, waitFor, type Netns, type Daemon } from '../sandbox';
import { startTern, ternReady, peerState, kernelRoutes, ternAndPeer, TERN_AT_T, type TernNode } from './harness';

const sb = new Sandbox('bgpg');
let t: Netns;
let g: Netns;
let tern: TernNode;
let gobgpd: Daemon;
let dir: string;

const neighbor = (address: string, family: string) => `
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${address}"
    peer-as = 65001
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "${family}"
`;
const gobgpConf = `
[global.config]
  as = 65003
  router-id = "198.18.0.3"
  local-address-list = ["198.18.0.3", "2001:2::3"]

${neighbor('198.18.0.1', 'ipv4-unicast')}
${neighbor('2001:2::1', 'ipv6-unicast')}
`;

/** The gobgp CLI inside GoBGP's namespace (the API listens on its loopback). */
function gobgp(...args: string[]): string {
  return g.must('gobgp', ['-u', '127.0.0.1', '-p', '50051', ...args]);
}
function gobgpPrefixes(family: 'ipv4' | 'ipv6'): string[] {
  const out = g.exec('gobgp', ['-u', '127.0.0.1', '-p', '50051', '-j', 'global', 'rib', '-a', family]);
  if (out.code !== 0 || !out.stdout.trim()) return [];
  return Object.keys(JSON.parse(out.stdout) as Record<string, unknown>);
}

beforeAll(async () => {
  ({ t, peer: g, dir } = ternAndPeer(sb, 'g', 3));
  const conf = path.join(dir, 'gobgpd.toml');
  fs.writeFileSync(conf, gobgpConf);
  gobgpd = sb.daemon('gobgpd', ['-f', conf, '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-p'], { netns: g });
  tern = startTern(sb, t, dir, 'tern', {
    ...TERN_AT_T,
    routes: ['10.30.0.0/26', '2001:db8:30::/48'],
    peers: [
      { address: '198.18.0.3', asn: 65003, importPrefixes: ['10.50.0.0/16'], exportPrefixes: ['10.30.0.0/16'] },
      { address: '2001:2::3', asn: 65003, importPrefixes: ['2001:db8:50::/48 le 64'], exportPrefixes: ['2001:db8:30::/48'] },
    ],
  });
  await ternReady(tern);
  await waitFor(() => g.exec('gobgp', ['-u', '127.0.0.1', '-p', '50051', 'global']).code === 0, { timeoutMs: 20_000, what: `gobgpd API (${gobgpd.output().slice(-2000)})` });
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) fs.writeFileSync('/tmp/hb-gobgp-debug.txt', tern.daemon.output() + '\n----\n' + gobgpd.output());
  await sb.cleanup();
});

describe('Tern <-> GoBGP eBGP', () => {
  it('establishes IPv4 and IPv6 sessions', async () => {
    await waitFor(() => peerState(tern, '198.18.0.3')?.state === 'Established' && peerState(tern, '2001:2::3')?.state === 'Established', { timeoutMs: 30_000, what: `sessions (${tern.daemon.output().slice(-3000)})` });
    expect(gobgp('neighbor')).toMatch(/198\.18\.0\.1\s+65001\s+\S+\s+Establ/);
  });

  it('GoBGP routes reach Tern and its kernel; Tern routes reach GoBGP', async () => {
    gobgp('global', 'rib', 'add', '10.50.0.0/26', '-a', 'ipv4');
    gobgp('global', 'rib', 'add', '10.99.0.0/26', '-a', 'ipv4'); // outside the pool
    gobgp('global', 'rib', 'add', '2001:db8:50:1::/64', '-a', 'ipv6');
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.50.0.0/26') && kernelRoutes(t, 6, '86').includes('2001:db8:50:1::/64'), { timeoutMs: 20_000, what: 'kernel routes from GoBGP' });
    expect(kernelRoutes(t, 4, '86')).not.toContain('10.99.0.0/26');
    expect(t.ipJson<{ gateway: string }[]>('route', 'show', '10.50.0.0/26')[0].gateway).toBe('198.18.0.3');
    await waitFor(() => gobgpPrefixes('ipv4').includes('10.30.0.0/26') && gobgpPrefixes('ipv6').includes('2001:db8:30::/48'), { timeoutMs: 20_000, what: 'routes at GoBGP' });
    expect(gobgp('global', 'rib', '-a', 'ipv4', '10.30.0.0/26')).toMatch(/198\.18\.0\.1\s+65001/);
  });

  it('withdrawals both ways', async () => {
    gobgp('global', 'rib', 'del', '10.50.0.0/26', '-a', 'ipv4');
    await waitFor(() => !kernelRoutes(t, 4, '86').includes('10.50.0.0/26'), { timeoutMs: 20_000, what: 'withdrawal in Tern kernel' });
    const f = path.join(dir, 'w.txt');
    fs.writeFileSync(f, '10.30.0.0/26\n');
    tern.ctl('withdraw', '--file', f);
    await waitFor(() => !gobgpPrefixes('ipv4').includes('10.30.0.0/26'), { timeoutMs: 20_000, what: 'withdrawal at GoBGP' });
  });

  it('GoBGP restarts; Tern drops its routes, re-establishes and relearns', { timeout: 120_000 }, async () => {
    // (GoBGP 3.10 `neighbor reset`/`disable`+`enable` leave its FSM idle for a long time, so restart the daemon.)
    await gobgpd.stop('SIGTERM');
    await waitFor(() => peerState(tern, '198.18.0.3')?.state !== 'Established', { timeoutMs: 30_000, what: 'session down' });
    await waitFor(() => !kernelRoutes(t, 4, '86').some((p) => p.startsWith('10.50.')), { timeoutMs: 20_000, what: 'routes removed' });
    gobgpd = sb.daemon('gobgpd', ['-f', path.join(dir, 'gobgpd.toml'), '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-p'], { netns: g });
    await waitFor(() => g.exec('gobgp', ['-u', '127.0.0.1', '-p', '50051', 'global']).code === 0, { timeoutMs: 20_000, what: 'gobgpd API' });
    gobgp('global', 'rib', 'add', '10.50.1.0/26', '-a', 'ipv4');
    await waitFor(() => peerState(tern, '198.18.0.3')?.state === 'Established', { timeoutMs: 60_000, what: 're-established' });
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.50.1.0/26'), { timeoutMs: 20_000, what: 'relearned' });
  });
});
