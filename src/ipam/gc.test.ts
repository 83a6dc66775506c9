import { describe, expect, it } from 'vitest';
import { checkIpam, overlappingBlocks, repairable, type Finding, type IpamState } from './gc';
import { affinityKey, blockKey, claimKey, normalisePool, type Block, type HandleRecord } from './model';
import type { KeyValue } from '../datastore/types';

const kv = (key: string, value: string) => ({ key, value, modRevision: 1, createRevision: 1 });

/** One pool, one block of node1 holding 10.0.0.1 for net.a.eth0 and 10.0.0.2 for net.b.eth0. */
function state(): IpamState {
  const pool = normalisePool({ cidr: '10.0.0.0/24', blockSize: 26 });
  const block: Block = { cidr: '10.0.0.0/26', pool: pool.cidr, affinity: 'node1', seq: 2, used: { '1': { h: 'net.a.eth0', s: 1 }, '2': { h: 'net.b.eth0', s: 2 } }, free: [] };
  const handle = (id: string, address: string, seq: number): [string, { kv: KeyValue; rec: HandleRecord }] => {
    const [network, containerId, ifname] = id.split('.');
    return [id, { kv: kv(`h/${id}`, ''), rec: { id, network, containerId, ifname, node: 'node1', ips: [{ address, family: 4, pool: pool.cidr, block: block.cidr, seq }], created: 0 } }];
  };
  return {
    revision: 1,
    pools: new Map([[pool.cidr, { kv: kv('p', ''), pool }]]),
    blocks: new Map([[blockKey(pool.cidr, block.cidr), { kv: kv(blockKey(pool.cidr, block.cidr), ''), block }]]),
    affinities: new Map([[affinityKey(pool.cidr, block.cidr), kv(affinityKey(pool.cidr, block.cidr), 'node1')]]),
    handles: new Map([handle('net.a.eth0', '10.0.0.1', 1), handle('net.b.eth0', '10.0.0.2', 2)]),
    claims: new Map([[claimKey(block.cidr), kv(claimKey(block.cidr), blockKey(pool.cidr, block.cidr))]]),
  };
}

describe('checkIpam: addresses routed or recorded for the wrong pod', () => {
  const cases: { name: string; routes?: { address: string; dev: string; handle: string }[]; endpoints?: { key: string; ips: string[] }[]; want: Finding[] }[] = [
    { name: 'consistent', routes: [{ address: '10.0.0.1', dev: 'ternA', handle: 'net.a.eth0' }], endpoints: [{ key: 'ns/a', ips: ['10.0.0.1'] }, { key: 'ns/b', ips: ['10.0.0.2/32'] }], want: [] },
    {
      name: 'routed to a pod that IPAM does not give it to',
      routes: [{ address: '10.0.0.2', dev: 'ternC', handle: 'net.c.eth0' }],
      want: [{ kind: 'misrouted-address', address: '10.0.0.2', dev: 'ternC', routedFor: 'net.c.eth0', holder: 'net.b.eth0' }],
    },
    {
      name: 'routed, but free in IPAM (the orphan of a cancelled ADD)',
      routes: [{ address: '10.0.0.9', dev: 'ternD', handle: 'net.d.eth0' }],
      want: [{ kind: 'misrouted-address', address: '10.0.0.9', dev: 'ternD', routedFor: 'net.d.eth0' }],
    },
    {
      name: 'one address in two endpoint records',
      endpoints: [{ key: 'ns/old', ips: ['10.0.0.1'] }, { key: 'ns/a', ips: ['10.0.0.1/32'] }, { key: 'ns/b', ips: ['10.0.0.2'] }],
      want: [{ kind: 'duplicate-endpoint-address', address: '10.0.0.1', endpoints: ['ns/a', 'ns/old'] }],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = checkIpam(state(), { now: 0, graceMs: 0, routes: c.routes, endpoints: c.endpoints });
      expect(got).toEqual(c.want);
      for (const f of got) expect(repairable(f)).toBe(false);
    });
  }
});

describe('overlappingBlocks', () => {
  const cases: [string, string[], [string, string][]][] = [
    ['disjoint neighbours', ['10.0.0.0/26', '10.0.0.64/26', 'fd00::/122', 'fd00::40/122'], []],
    ['a /28 inside a /26 (block size changed)', ['10.244.0.0/26', '10.244.0.0/28', '10.244.0.16/28', '10.244.0.64/26'], [['10.244.0.0/28', '10.244.0.0/26'], ['10.244.0.16/28', '10.244.0.0/26']]],
    ['same base, other family', ['10.0.0.0/26', '::a00:0/122'], []],
    ['a later /26 overlapping a wide /24 after a small one', ['10.0.0.0/24', '10.0.0.0/30', '10.0.0.128/26'], [['10.0.0.0/30', '10.0.0.0/24'], ['10.0.0.128/26', '10.0.0.0/24']]],
  ];
  for (const [name, cidrs, want] of cases) {
    it(name, () => {
      expect(overlappingBlocks(cidrs).map((f) => (f.kind === 'overlapping-blocks' ? [f.block, f.other] : []))).toEqual(want);
    });
  }
});
