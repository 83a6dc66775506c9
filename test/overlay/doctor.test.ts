/**
 * ternctl doctor against the real kernel: the probes must agree with what
 * creating the devices directly in a sandbox namespace gives, and sysctls are
 * read in the namespace asked for.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runDoctor } from '../../src/cli/doctor';
import { buildProgram } from '../../src/cli/main';
import { Netns, Sandbox } from '../sandbox';

const sb = new Sandbox('odoc');
let good: Netns;
let bad: Netns;
let scratch: Netns;

beforeAll(() => {
  good = sb.netns('good');
  good.sysctl('net.ipv4.ip_forward', '1');
  for (const k of ['all', 'default']) good.sysctl(`net.ipv4.conf.${k}.rp_filter`, '0');
  bad = sb.netns('bad');
  bad.sysctl('net.ipv4.ip_forward', '0');
  bad.sysctl('net.ipv4.conf.all.rp_filter', '1');
  scratch = sb.netns('scr');
});
afterAll(() => sb.cleanup());

async function ternctl(args: string[]): Promise<{ code: number; out: string }> {
  const { main } = await import('../../src/cli/main');
  let out = '';
  const w = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return { code: await main(['node', 'ternctl', ...args]), out };
  } finally {
    w.mockRestore();
    e.mockRestore();
  }
}

describe('ternctl doctor', () => {
  it('device probes agree with creating the devices directly', () => {
    const r = runDoctor({ netnsPath: good.path });
    const can = (script: string) => (scratch.exec('bash', ['-c', script]).code === 0 ? 'yes' : 'no');
    const vxlan = can('ip link add name dvx type vxlan id 7 dstport 4789 && ip link del dvx');
    const vlan = can('ip link add name dv0 type veth peer name dv1 && ip link add link dv0 name dv0.7 type vlan id 7; rc=$?; ip link del dv0; exit $rc');
    const byMode = Object.fromEntries(r.modes.map((m) => [m.mode, m]));
    expect(byMode.vxlan.available).toBe(vxlan === 'yes');
    expect(byMode.vlan.available).toBe(vlan === 'yes');
    expect(r.checks.find((c) => c.name === '8021q')!.severity).toBe(vlan === 'yes' ? 'ok' : 'info');
    if (vlan === 'no') expect(byMode.vlan.reasons.join()).toMatch(/8021q/);
  });

  it('a namespace with forwarding on and rp_filter off can run routed mode', () => {
    const r = runDoctor({ netnsPath: good.path });
    expect(r.modes.find((m) => m.mode === 'routed')!.available).toBe(true);
    expect(r.checks.find((c) => c.name === 'forwarding')!.severity).toBe('ok');
    expect(r.checks.find((c) => c.name === 'rp_filter')!.severity).toBe('ok');
  });

  it('reports forwarding off and strict rp_filter as problems', () => {
    const r = runDoctor({ netnsPath: bad.path });
    expect(r.modes.find((m) => m.mode === 'routed')).toMatchObject({ available: false, reasons: ['net.ipv4.ip_forward is not 1'] });
    expect(r.problems.map((p) => [p.name, p.severity])).toEqual(expect.arrayContaining([['forwarding', 'error'], ['rp_filter', 'warning']]));
  });

  it('-o json prints the report; errors give exit code 1', async () => {
    const bad1 = await ternctl(['-o', 'json', 'doctor', '--netns', bad.path]);
    expect(bad1.code).toBe(1);
    const j = JSON.parse(bad1.out);
    expect(j.modes.map((m: { mode: string }) => m.mode)).toEqual(['routed', 'vxlan', 'vxlan-crosssubnet', 'vlan']);
    expect(j.problems.some((p: { name: string }) => p.name === 'forwarding')).toBe(true);
    const ok = await ternctl(['doctor', '--netns', good.path]);
    expect(ok.out).toMatch(/^MODE\s+AVAILABLE/m);
    expect(ok.out).toMatch(/^routed\s+yes/m);
  });

  it('is registered in ternctl', () => {
    expect(buildProgram().commands.map((c) => c.name())).toContain('doctor');
  });
});
