/**
 * Tern against FRR's bgpd (run alone: no zebra, no kernel) in network
 * namespaces: eBGP IPv4, routes both ways, withdrawal, and FRR going away.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sandbox, sh, waitFor, type Netns, type Daemon } from '../sandbox';
import { startTern, ternReady, peerState, kernelRoutes, ternAndPeer, TERN_AT_T, type TernNode } from './harness';

const sb = new Sandbox('bgpfrr');
let t: Netns;
let f: Netns;
let tern: TernNode;
let bgpd: Daemon;
let dir: string;

const frrConf = `
router bgp 65004
 bgp router-id 198.18.0.4
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.18.0.1 remote-as 65001
 neighbor 198.18.0.1 timers 3 9
 neighbor 198.18.0.1 timers connect 2
 address-family ipv4 unicast
  network 10.70.0.0/26
  network 10.71.0.0/26
 exit-address-family
`;

const vtysh = (cmd: string) => sh('vtysh', ['--vty_socket', dir, '-d', 'bgpd', '-c', cmd]).stdout;
const frrPrefixes = (): string[] => {
  try {
    return Object.keys((JSON.parse(vtysh('show bgp ipv4 unicast json')) as { routes?: object }).routes ?? {});
  } catch {
    return [];
  }
};

beforeAll(async () => {
  ({ t, peer: f, dir } = ternAndPeer(sb, 'f', 4));
  fs.writeFileSync(path.join(dir, 'bgpd.conf'), frrConf);
  bgpd = sb.daemon('/usr/lib/frr/bgpd', ['-f', path.join(dir, 'bgpd.conf'), '-i', path.join(dir, 'bgpd.pid'), '-Z', '-S', '-n', '--vty_socket', dir, '--log', 'stdout'], { netns: f });
  tern = startTern(sb, t, dir, 'tern', {
    ...TERN_AT_T,
    families: ['ipv4'],
    routes: ['10.30.0.0/26'],
    peers: [{ address: '198.18.0.4', asn: 65004, importPrefixes: ['10.70.0.0/16'], exportPrefixes: ['10.30.0.0/16'] }],
  });
  await ternReady(tern);
});

afterAll(async () => {
  await sb.cleanup();
});

describe('Tern <-> FRR eBGP', () => {
  it('establishes and exchanges routes both ways', async () => {
    await waitFor(() => peerState(tern, '198.18.0.4')?.state === 'Established', { timeoutMs: 30_000, what: `session (${bgpd.output().slice(-2000)})` });
    await waitFor(() => kernelRoutes(t, 4, '86').includes('10.70.0.0/26'), { timeoutMs: 20_000, what: 'FRR route in Tern kernel' });
    expect(kernelRoutes(t, 4, '86')).not.toContain('10.71.0.0/26'); // outside the import pool
    expect(t.ipJson<{ gateway: string }[]>('route', 'show', '10.70.0.0/26')[0].gateway).toBe('198.18.0.4');
    await waitFor(() => frrPrefixes().includes('10.30.0.0/26'), { timeoutMs: 20_000, what: 'Tern route at FRR' });
    expect(vtysh('show bgp ipv4 unicast 10.30.0.0/26')).toMatch(/65001/);
  });

  it('Tern withdraws; FRR drops the route', async () => {
    const file = path.join(dir, 'w.txt');
    fs.writeFileSync(file, '10.30.0.0/26\n');
    tern.ctl('withdraw', '--file', file);
    await waitFor(() => !frrPrefixes().includes('10.30.0.0/26'), { timeoutMs: 20_000, what: 'withdrawal at FRR' });
  });

  it('FRR goes away; Tern removes its routes', async () => {
    await bgpd.stop('SIGTERM');
    await waitFor(() => peerState(tern, '198.18.0.4')?.state !== 'Established', { timeoutMs: 30_000, what: 'session down' });
    await waitFor(() => !kernelRoutes(t, 4, '86').includes('10.70.0.0/26'), { timeoutMs: 20_000, what: 'routes removed' });
  });
});
