import { describe, it, expect } from 'vitest';
import { formatPeers, formatRoutes } from '../../src/cli/bgp';
import { validateConfig } from '../../src/bgp-speaker';

describe('ternctl bgp output', () => {
  it('peers: one row per session with state, uptime, counts and last error', () => {
    const out = formatPeers([
      { address: '192.0.2.2', asn: 65002, state: 'Established', since: '2026-11-24T22:00:00.000Z', uptimeSeconds: 3725, routerId: '192.0.2.2', holdTime: 90, received: 12, accepted: 10, filtered: 2, sent: 3 },
      { address: '192.0.2.3', asn: 65003, state: 'Active', since: '2026-11-24T22:01:00.000Z', uptimeSeconds: 5, received: 0, accepted: 0, filtered: 0, sent: 0, lastError: 'sent NOTIFICATION 6/10: BFD down', bfd: { state: 'Down', remoteState: 'Down', diag: 1, since: '2026-11-24T22:01:00.000Z', downs: 1 } },
      { address: '192.0.2.4', asn: 65004, state: 'Established', since: '2026-11-24T22:01:00.000Z', uptimeSeconds: 5, received: 0, accepted: 0, filtered: 0, sent: 0, bfd: { state: 'Up', remoteState: 'Up', diag: 0, txInterval: 300, detectionTime: 900, since: '2026-11-24T22:01:00.000Z', downs: 1 } },
    ]);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^Peer\s+AS\s+State\s+Since\s+Uptime\s+Received\s+Accepted\s+Sent\s+BFD\s+Info$/);
    expect(lines[1]).toMatch(/^192\.0\.2\.2\s+65002\s+Established\s+2026-11-24 22:00:00\s+1h2m5s\s+12\s+10\s+3\s+-\s+router id 192\.0\.2\.2$/);
    expect(lines[2]).toMatch(/Active .* Down\s+sent NOTIFICATION 6\/10: BFD down$/);
    expect(lines[3]).toMatch(/Established .* Up 900ms\s*$/);
  });
  it('routes: best path, next hops (ECMP joined) and the reason', () => {
    const out = formatRoutes([
      { prefix: '10.2.0.0/24', best: { peer: 'local', nextHop: 'self', asPath: '', origin: 0 }, reason: 'only-path', paths: [{ peer: 'local', nextHop: 'self', asPath: '' }], multipath: [''] },
      { prefix: '10.1.0.0/24', best: { peer: '192.0.2.2', nextHop: '192.0.2.2', asPath: '65002', origin: 0 }, reason: 'as-path-length', paths: [], multipath: ['192.0.2.2', '192.0.2.4'] },
    ]);
    const lines = out.trim().split('\n');
    expect(lines[1]).toMatch(/^10\.1\.0\.0\/24\s+192\.0\.2\.2,192\.0\.2\.4\s+192\.0\.2\.2\s+65002\s+0\s+as-path-length$/);
    expect(lines[2]).toMatch(/^10\.2\.0\.0\/24\s+self\s+local\s+\(empty\)\s+1\s+only-path$/);
  });
});

describe('standalone config validation', () => {
  const ok = { asn: 65001, routerId: '192.0.2.1', peers: [{ address: '192.0.2.2', asn: 65002 }] };
  const table: { name: string; cfg: object; error?: RegExp }[] = [
    { name: 'minimal', cfg: ok },
    { name: 'routes are canonicalized', cfg: { ...ok, routes: ['10.0.0.1/24'] } },
    { name: 'bad asn', cfg: { ...ok, asn: 0 }, error: /asn/ },
    { name: 'IPv6 router id', cfg: { ...ok, routerId: '2001:db8::1' }, error: /routerId/ },
    { name: 'hold time 2', cfg: { ...ok, holdTime: 2 }, error: /holdTime/ },
    { name: 'peer without address', cfg: { ...ok, peers: [{ asn: 1 }] }, error: /peers\[0\]\.address/ },
    { name: 'bad prefix rule', cfg: { ...ok, peers: [{ address: '192.0.2.2', asn: 2, importPrefixes: ['10.0.0.0/33'] }] }, error: /importPrefixes/ },
    { name: 'bad family', cfg: { ...ok, families: ['ipx'] }, error: /families/ },
  ];
  for (const t of table) {
    it(t.name, () => {
      if (t.error) expect(() => validateConfig(structuredClone(t.cfg))).toThrow(t.error);
      else expect(validateConfig(structuredClone(t.cfg)).asn).toBe(65001);
    });
  }
  it('canonical routes', () => expect(validateConfig({ ...ok, routes: ['10.0.0.1/24'] }).routes).toEqual(['10.0.0.0/24']));
});
