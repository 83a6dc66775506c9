/**
 * Two Tern speakers: iBGP and eBGP between them, both sides active at once
 * (connection collision, RFC 4271 §6.8) and a passive side; max-prefix.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, peerState, kernelRoutes, type TernNode } from './harness';

const sb = new Sandbox('bgpt');
let a: Netns;
let b: Netns;
let c: Netns;
let ta: TernNode;
let tb: TernNode;
let tc: TernNode;

const base = { holdTime: 9, connectRetryTime: 1, idleHoldTime: 1, installIntoKernel: true, families: ['ipv4'] };

beforeAll(async () => {
  a = sb.netns('a');
  b = sb.netns('b');
  c = sb.netns('c');
  sb.link(a, 'eth0', b, 'eth0', { aAddr: '198.18.3.1/24', bAddr: '198.18.3.2/24' });
  sb.link(a, 'eth1', c, 'eth0', { aAddr: '198.18.4.1/24', bAddr: '198.18.4.2/24' });
  const dir = sb.tmpdir();
  // a <-> b: iBGP, both active: their first connections cross.
  // a <-> c: eBGP, c passive; c sends more prefixes than a allows.
  ta = startTern(sb, a, dir, 'a', {
    ...base,
    asn: 65000,
    routerId: '198.18.3.1',
    routes: ['10.61.0.0/24'],
    peers: [
      { address: '198.18.3.2', asn: 65000 },
      { address: '198.18.4.2', asn: 65100, importPrefixes: ['10.63.0.0/16'], exportPrefixes: ['10.61.0.0/16'], maxPrefix: 3 },
    ],
  });
  tb = startTern(sb, b, dir, 'b', { ...base, asn: 65000, routerId: '198.18.3.2', routes: ['10.62.0.0/24'], peers: [{ address: '198.18.3.1', asn: 65000 }] });
  tc = startTern(sb, c, dir, 'c', {
    ...base,
    asn: 65100,
    routerId: '198.18.4.2',
    routes: ['10.63.0.0/24', '10.63.1.0/24'],
    peers: [{ address: '198.18.4.1', asn: 65000, passive: true, exportPrefixes: ['10.63.0.0/16'], importPrefixes: ['10.61.0.0/16'] }],
  });
  await Promise.all([ternReady(ta), ternReady(tb), ternReady(tc)]);
});

afterAll(async () => {
  if (process.env.BGP_DEBUG) require('node:fs').writeFileSync('/tmp/hb-tt-debug.txt', JSON.stringify(ta.ctl('peers'), null, 1) + JSON.stringify(tc.ctl('peers'), null, 1) + ta.daemon.output().slice(-6000));
  await sb.cleanup();
});

describe('Tern <-> Tern', () => {
  it('iBGP with both sides active settles on one session and exchanges routes', async () => {
    await waitFor(() => peerState(ta, '198.18.3.2')?.state === 'Established' && peerState(tb, '198.18.3.1')?.state === 'Established', { timeoutMs: 30_000, what: 'iBGP session' });
    await waitFor(() => kernelRoutes(a, 4, '86').includes('10.62.0.0/24') && kernelRoutes(b, 4, '86').includes('10.61.0.0/24'), { timeoutMs: 20_000, what: 'routes both ways' });
    // One TCP session on port 179 between them.
    const conns = a.must('ss', ['-Htn', 'state', 'established', '( sport = :179 or dport = :179 )', 'dst', '198.18.3.2']).trim().split('\n').filter(Boolean);
    expect(conns).toHaveLength(1);
    const [r] = ta.ctl<{ best: { localPref?: number; asPath: string } }[]>('routes', '10.62.0.0/24');
    expect(r.best).toMatchObject({ localPref: 100, asPath: '' });
  });

  it('the passive side waits to be called; eBGP routes flow both ways and into the kernel', async () => {
    await waitFor(() => peerState(tc, '198.18.4.1')?.state === 'Established', { timeoutMs: 30_000, what: 'eBGP session to the passive peer' });
    await waitFor(() => kernelRoutes(a, 4, '86').includes('10.63.1.0/24') && kernelRoutes(c, 4, '86').includes('10.61.0.0/24'), { timeoutMs: 20_000, what: 'eBGP routes' });
    // a does not pass b's iBGP route to c: it is outside a's export list to c.
    expect(kernelRoutes(c, 4, '86')).not.toContain('10.62.0.0/24');
    const [r] = tc.ctl<{ best: { asPath: string } }[]>('routes', '10.61.0.0/24');
    expect(r.best.asPath).toBe('65000');
  });

  it('max-prefix: a peer that sends too many prefixes gets Cease/1', async () => {
    const f = require('node:path').join(sb.tmpdir(), 'more.txt');
    require('node:fs').writeFileSync(f, '10.63.2.0/24\n10.63.3.0/24\n');
    tc.ctl('announce', '--file', f);
    await waitFor(() => peerState(ta, '198.18.4.2')?.lastError?.includes('sent NOTIFICATION 6/1'), { timeoutMs: 20_000, what: 'Cease/1 sent' });
    await waitFor(() => peerState(tc, '198.18.4.1')?.lastError?.includes('received NOTIFICATION 6/1'), { timeoutMs: 20_000, what: 'Cease/1 received' });
  });
});
