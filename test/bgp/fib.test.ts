/**
 * KernelFib in a real namespace: install, ECMP (RTA_MULTIPATH), replace,
 * delete, mark-and-sweep that touches only Tern-owned routes, and the
 * warm-up's encoding that writes nothing. The
 * adapter runs in a child process inside the namespace, since a netlink
 * socket belongs to the namespace it was opened in.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { Sandbox, REPO, type Netns } from '../sandbox';

const sb = new Sandbox('bgpf');
let ns: Netns;
const FIB = path.join(REPO, 'dist', 'src', 'bgp-speaker', 'fib.js');
const LOG = path.join(REPO, 'dist', 'src', 'lib', 'log.js');
const RIB = path.join(REPO, 'dist', 'src', 'bgp-speaker', 'rib', 'index.js');

/** Run `body` (async JS using `fib`) inside the namespace; returns what it prints as JSON. */
function inNs<T>(body: string): T {
  const script = `
    const { KernelFib } = require(${JSON.stringify(FIB)});
    const { silentLogger } = require(${JSON.stringify(LOG)});
    const { fibBatch, fibKey } = require(${JSON.stringify(RIB)});
    (async () => {
      const fib = new KernelFib(silentLogger(), { batch: 3, window: 2 });
      try { const out = await (async () => { ${body} })(); process.stdout.write(JSON.stringify(out ?? null)); }
      catch (e) { process.stdout.write(JSON.stringify({ error: e.message })); }
      finally { fib.close(); }
    })();`;
  return JSON.parse(ns.must(process.execPath, ['-e', script])) as T;
}
const routes = (fam = '-4') => ns.ipJson<{ dst: string; gateway?: string; protocol: string; nexthops?: { gateway: string }[] }[]>(fam, 'route', 'show', 'proto', '86');

beforeAll(() => {
  ns = sb.netns('f');
  const peer = sb.netns('p');
  sb.link(ns, 'eth0', peer, 'eth0', { aAddr: '198.18.5.1/24', bAddr: '198.18.5.2/24' });
  ns.ip('-6', 'addr', 'add', '2001:db8:5::1/64', 'dev', 'eth0', 'nodad');
  ns.ip('addr', 'add', '198.18.5.3/24', 'dev', 'eth0'); // nothing answers; routes only need an on-link gateway
});
afterAll(async () => {
  await sb.cleanup();
});

describe('KernelFib', () => {
  it('installs single-path, ECMP and IPv6 routes with protocol 86 in batches', () => {
    const r = inNs(`
      const ch = [];
      for (let i = 0; i < 10; i++) ch.push({ prefix: '10.7.' + i + '.0/24', nextHops: ['198.18.5.2'] });
      ch.push({ prefix: '10.8.0.0/24', nextHops: ['198.18.5.2', '198.18.5.4'] });
      ch.push({ prefix: '2001:db8:77::/48', nextHops: ['2001:db8:5::2'] });
      await fib.apply(fibBatch(ch));
      return (await fib.list()).length;`);
    expect(r).toBe(12);
    const v4 = routes();
    expect(v4.filter((x) => x.dst.startsWith('10.7.')).length).toBe(10);
    const ecmp = v4.find((x) => x.dst === '10.8.0.0/24')!;
    expect(ecmp.nexthops!.map((h) => h.gateway).sort()).toEqual(['198.18.5.2', '198.18.5.4']);
    expect(routes('-6').map((x) => x.dst)).toEqual(['2001:db8:77::/48']);
  });

  it('replaces, deletes, and treats deleting a missing route as done', () => {
    const r = inNs(`
      await fib.apply(fibBatch([{ prefix: '10.7.0.0/24', nextHops: ['198.18.5.4'] }, { prefix: '10.7.1.0/24', nextHops: [] }, { prefix: '10.99.0.0/24', nextHops: [] }]));
      return 'ok';`);
    expect(r).toBe('ok');
    expect(routes().find((x) => x.dst === '10.7.0.0/24')!.gateway).toBe('198.18.5.4');
    expect(routes().some((x) => x.dst === '10.7.1.0/24')).toBe(false);
  });

  it('returns the routes the kernel refused, with their errno', () => {
    const r = inNs<{ prefix: string; errno: number }[]>(`return await fib.apply(fibBatch([{ prefix: '10.9.0.0/24', nextHops: ['203.0.113.9'] }, { prefix: '10.9.1.0/24', nextHops: ['198.18.5.2'] }]));`);
    expect(r).toEqual([{ prefix: '10.9.0.0/24', errno: 101 }]); // ENETUNREACH: no route to the next hop
    ns.ip('route', 'del', '10.9.1.0/24');
  });

  it('writes IPv4 routes from their numeric keys: edge lengths, host bits cleared', () => {
    // In a table of their own: the namespace's default route is the sandbox's. [given, in the kernel]
    const cases = [
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['128.0.0.0/1', '128.0.0.0/1'],
      ['200.1.2.3/1', '128.0.0.0/1'],
      ['10.70.0.0/16', '10.70.0.0/16'],
      ['10.70.3.128/25', '10.70.3.128/25'],
      ['10.70.6.255/24', '10.70.6.0/24'],
      ['10.70.4.2/31', '10.70.4.2/31'],
      ['10.70.4.5/31', '10.70.4.4/31'],
      ['10.70.5.7/32', '10.70.5.7/32'],
      ['255.255.255.255/32', '255.255.255.255/32'],
    ];
    const r = inNs<{ keys: unknown[]; failed: unknown[] }>(`
      const f = new KernelFib(silentLogger(), { table: 1070 });
      try {
        const keys = ${JSON.stringify(cases.map((c) => c[0]))}.map((p) => fibKey(p));
        const failed = await f.apply({ keys, nextHops: keys.map(() => ['198.18.5.2']) });
        return { keys, failed };
      } finally { f.close(); }`);
    expect(r.keys.every((k) => typeof k === 'number')).toBe(true);
    expect(r.failed).toEqual([]);
    const got = ns.ipJson<{ dst: string; gateway: string; protocol: string }[]>('-4', 'route', 'show', 'table', '1070', 'proto', '86');
    const dst = (d: string) => (d === 'default' ? '0.0.0.0/0' : d.includes('/') ? d : `${d}/32`);
    expect(got.map((x) => `${dst(x.dst)} via ${x.gateway}`).sort()).toEqual([...new Set(cases.map((c) => `${c[1]} via 198.18.5.2`))].sort()); // two name 128.0.0.0/1: one route
    ns.ip('route', 'flush', 'table', '1070');
  });

  it('mark and sweep removes only Tern routes that were not installed again', () => {
    ns.ip('route', 'add', '10.50.0.0/24', 'via', '198.18.5.2', 'proto', 'static');
    const r = inNs<{ marked: number }>(`
      const marked = await fib.start();
      await fib.apply(fibBatch([{ prefix: '10.7.2.0/24', nextHops: ['198.18.5.2'] }]));
      await fib.converged();
      return { marked };`);
    expect(r.marked).toBe(11);
    expect(routes().map((x) => x.dst)).toEqual(['10.7.2.0/24']);
    expect(routes('-6')).toEqual([]);
    expect(ns.ipJson('route', 'show', '10.50.0.0/24').length).toBe(1); // not ours: untouched
  });

  it('rehearse (the warm-up) writes nothing, forgets its next hops and leaves the marks: a stale route is still swept', () => {
    const r = inNs<{ marked: number; moved: string[] }>(`
      const marked = await fib.start();
      await fib.rehearse(fibBatch([{ prefix: '10.7.2.0/24', nextHops: ['198.18.5.2'] }, { prefix: '10.9.0.0/24', nextHops: ['198.18.5.2'] }]));
      const moved = await fib.movedNextHops();
      await fib.converged();
      return { marked, moved };`);
    expect(r.marked).toBe(1);
    expect(r.moved).toEqual([]);
    expect(routes()).toEqual([]);
  });
});
