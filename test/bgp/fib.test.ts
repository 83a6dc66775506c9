/**
 * KernelFib in a real namespace: install, ECMP (RTA_MULTIPATH), replace,
 * delete, and mark-and-sweep that touches only Tern-owned routes. The
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

/** Run `body` (async JS using `fib`) inside the namespace; returns what it prints as JSON. */
function inNs<T>(body: string): T {
  const script = `
    const { KernelFib } = require(${JSON.stringify(FIB)});
    const { silentLogger } = require(${JSON.stringify(LOG)});
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
      for (let i = 0; i < 10; i++) ch.push({ family: 1, prefix: '10.7.' + i + '.0/24', nextHops: ['198.18.5.2'] });
      ch.push({ family: 1, prefix: '10.8.0.0/24', nextHops: ['198.18.5.2', '198.18.5.4'] });
      ch.push({ family: 2, prefix: '2001:db8:77::/48', nextHops: ['2001:db8:5::2'] });
      await fib.apply(ch);
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
      await fib.apply([{ family: 1, prefix: '10.7.0.0/24', nextHops: ['198.18.5.4'] }, { family: 1, prefix: '10.7.1.0/24', nextHops: [] }, { family: 1, prefix: '10.99.0.0/24', nextHops: [] }]);
      return 'ok';`);
    expect(r).toBe('ok');
    expect(routes().find((x) => x.dst === '10.7.0.0/24')!.gateway).toBe('198.18.5.4');
    expect(routes().some((x) => x.dst === '10.7.1.0/24')).toBe(false);
  });

  it('returns the routes the kernel refused, with their errno', () => {
    const r = inNs<{ prefix: string; errno: number }[]>(`return await fib.apply([{ family: 1, prefix: '10.9.0.0/24', nextHops: ['203.0.113.9'] }, { family: 1, prefix: '10.9.1.0/24', nextHops: ['198.18.5.2'] }]);`);
    expect(r).toEqual([{ prefix: '10.9.0.0/24', errno: 101 }]); // ENETUNREACH: no route to the next hop
    ns.ip('route', 'del', '10.9.1.0/24');
  });

  it('mark and sweep removes only Tern routes that were not installed again', () => {
    ns.ip('route', 'add', '10.50.0.0/24', 'via', '198.18.5.2', 'proto', 'static');
    const r = inNs<{ marked: number }>(`
      const marked = await fib.start();
      await fib.apply([{ family: 1, prefix: '10.7.2.0/24', nextHops: ['198.18.5.2'] }]);
      await fib.converged();
      return { marked };`);
    expect(r.marked).toBe(11);
    expect(routes().map((x) => x.dst)).toEqual(['10.7.2.0/24']);
    expect(routes('-6')).toEqual([]);
    expect(ns.ipJson('route', 'show', '10.50.0.0/24').length).toBe(1); // not ours: untouched
  });
});
