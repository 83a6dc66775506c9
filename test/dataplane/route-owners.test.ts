/**
 * One node, every owner of kernel routes at once: BGP-learned routes (proto
 * 86), VXLAN onlink routes (87), a pod host route (84) and a block blackhole
 * (85). Each owner restarts, marks and sweeps, and nobody removes another's
 * route. Routes left with the old shared mark 84 are adopted by their owner:
 * re-marked in place when still wanted, removed otherwise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTPROT_BGP, RTPROT_VXLAN } from '../../src/lib/constants';
import { silentLogger } from '../../src/lib/log';
import { NetnsHandle } from '../../src/dataplane';
import { KernelFib } from '../../src/bgp-speaker/fib';
import { fibBatch } from '../../src/bgp-speaker/rib';
import { VxlanReconciler, vtepMacFor, type OverlayDesired } from '../../src/overlay';
import { Sandbox, type Netns } from '../sandbox';

const sb = new Sandbox('rown');
let ns: Netns;

const desired: OverlayDesired = {
  mode: 'vxlan',
  self: { name: 'n1', underlayIp: '198.18.7.1', tunnelIp: '10.96.0.1' },
  remotes: [{ name: 'n9', underlayIp: '198.18.7.9', vtepMac: vtepMacFor('n9'), tunnelIp: '10.96.0.9', blocks: ['10.244.9.0/26'], subnet: '198.18.7.0/24' }],
};

/** A KernelFib whose sockets live in the node namespace. */
function fibInNode(): KernelFib {
  const h = NetnsHandle.open(ns.path);
  try {
    return h.run(() => new KernelFib(silentLogger()));
  } finally {
    h.close();
  }
}

/** "dst via gateway proto N" for every route but the kernel's own. */
function table(): string[] {
  return ns
    .ipJson<{ dst: string; gateway?: string; protocol: string; type?: string }[]>('route', 'show')
    .filter((r) => r.protocol !== 'kernel')
    .map((r) => `${r.type === 'blackhole' ? 'blackhole ' : ''}${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} proto ${r.protocol}`)
    .sort();
}

beforeAll(() => {
  ns = sb.netns('n1');
  const peer = sb.netns('p');
  sb.link(ns, 'eth0', peer, 'eth0', { aAddr: '198.18.7.1/24', bAddr: '198.18.7.2/24' });
  // A pod's host veth (its peer stays in the node: only the route matters here).
  ns.ip('link', 'add', 'ternpod0', 'type', 'veth', 'peer', 'name', 'ternpod1');
  ns.ip('link', 'set', 'ternpod0', 'up');
  ns.ip('link', 'set', 'ternpod1', 'up');
  ns.ip('route', 'add', '10.244.0.5/32', 'dev', 'ternpod0', 'scope', 'link', 'proto', '84');
  ns.ip('route', 'add', 'blackhole', '10.244.0.0/26', 'proto', '85');
});
afterAll(async () => {
  await sb.cleanup();
});

describe('route owners on one node', () => {
  it('BGP and VXLAN routes coexist: neither owner sweeps or diffs away the other\'s', async () => {
    const vx = new VxlanReconciler({ netnsPath: ns.path });
    let fib = fibInNode();
    try {
      await vx.reconcile(desired);
      await fib.apply(fibBatch([{ prefix: '10.50.0.0/24', nextHops: ['198.18.7.2'] }]));
      const all = ['10.244.0.5 proto 84', 'blackhole 10.244.0.0/26 proto 85', '10.50.0.0/24 via 198.18.7.2 proto 86', '10.244.9.0/26 via 10.96.0.9 proto 87'].sort();
      expect(table()).toEqual(all);

      // The speaker restarts and re-learns nothing: its sweep removes its own route only.
      fib.close();
      fib = fibInNode();
      expect(await fib.start()).toBe(1);
      await fib.apply(fibBatch([{ prefix: '10.51.0.0/24', nextHops: ['198.18.7.2'] }]));
      await fib.converged();
      // The overlay reconciles again: the BGP route on the uplink is not its own.
      const { ops } = await vx.reconcile(desired);
      expect(ops).toEqual([]);
      expect(table()).toEqual([...all.filter((r) => !r.startsWith('10.50.')), '10.51.0.0/24 via 198.18.7.2 proto 86'].sort());

      // A node leaving the overlay takes its VXLAN route, and only that.
      await vx.reconcile({ ...desired, remotes: [] });
      expect(table()).toEqual(['10.244.0.5 proto 84', 'blackhole 10.244.0.0/26 proto 85', '10.51.0.0/24 via 198.18.7.2 proto 86'].sort());
      await fib.apply(fibBatch([{ prefix: '10.51.0.0/24', nextHops: [] }]));
    } finally {
      fib.close();
      vx.close();
    }
  });

  it('BGP adopts routes with the old shared mark: re-learned ones re-marked in place, the rest swept; pod routes untouched', async () => {
    ns.ip('route', 'add', '10.60.0.0/24', 'via', '198.18.7.2', 'proto', '84');
    ns.ip('route', 'add', '10.61.0.0/24', 'via', '198.18.7.2', 'proto', '84');
    const fib = fibInNode();
    try {
      expect(await fib.start()).toBe(2);
      await fib.apply(fibBatch([{ prefix: '10.60.0.0/24', nextHops: ['198.18.7.2'] }]));
      expect(table()).toContain(`10.60.0.0/24 via 198.18.7.2 proto ${RTPROT_BGP}`);
      await fib.converged();
      expect(table()).toEqual(['10.244.0.5 proto 84', 'blackhole 10.244.0.0/26 proto 85', `10.60.0.0/24 via 198.18.7.2 proto ${RTPROT_BGP}`].sort());
      await fib.apply(fibBatch([{ prefix: '10.60.0.0/24', nextHops: [] }]));
    } finally {
      fib.close();
    }
  });

  it('VXLAN adopts its old-mark routes: the wanted one re-marked, a stale one removed', async () => {
    const vx = new VxlanReconciler({ netnsPath: ns.path });
    try {
      await vx.reconcile(desired);
      ns.ip('route', 'replace', '10.244.9.0/26', 'via', '10.96.0.9', 'dev', 'tern.vxlan', 'onlink', 'proto', '84');
      ns.ip('route', 'add', '10.244.8.0/26', 'via', '10.96.0.8', 'dev', 'tern.vxlan', 'onlink', 'proto', '84');
      await vx.reconcile(desired);
      expect(table()).toEqual(['10.244.0.5 proto 84', 'blackhole 10.244.0.0/26 proto 85', `10.244.9.0/26 via 10.96.0.9 proto ${RTPROT_VXLAN}`].sort());
    } finally {
      vx.close();
    }
  });
});
