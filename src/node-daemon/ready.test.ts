import { describe, expect, it } from 'vitest';
import { notReady, type DaemonStatus } from './health';

const base: DaemonStatus = { node: 'n1', ready: true, datastore: { type: 'sqlite', where: '/x', reachable: true }, blocks: [] };
const peer = (address: string, state: string) => ({ address, asn: 64512, state, since: '', uptimeSeconds: 0, received: 0, accepted: 0, filtered: 0, sent: 0 });
const acl = (lastError?: string, dirError?: string) => ({ active: true, syncs: 1, endpoints: 0, policies: 0, lastError, policyDir: { path: '/etc/tern/policies.d', present: true, resources: 0, lastError: dirError } });

describe('readiness (/readyz and ternctl status): started, datastore reachable, ACL in sync, policy directory accepted, every BGP session up', () => {
  const table: [string, DaemonStatus, string[]][] = [
    ['all good', { ...base, bgp: { asn: 64512, routerId: '1.1.1.1', peers: [peer('192.0.2.12', 'Established')] }, acl: acl() }, []],
    ['still starting', { ...base, ready: false }, ['starting']],
    ['datastore gone', { ...base, datastore: { ...base.datastore, reachable: false } }, ['datastore unreachable']],
    ['ACL apply failed', { ...base, acl: acl('iptables-restore failed') }, ['ACL sync failed: iptables-restore failed']],
    ['a session down', { ...base, bgp: { asn: 64512, routerId: '1.1.1.1', peers: [peer('192.0.2.12', 'Established'), peer('192.0.2.13', 'Active')] } }, ['BGP 192.0.2.13 Active']],
    ['policy directory rejected', { ...base, acl: acl(undefined, 'a.yaml:3: spec.order: expected an integer') }, ['policy directory rejected: a.yaml:3: spec.order: expected an integer']],
    ['BGP off, ACL unused', base, []],
  ];
  for (const [name, st, want] of table) it(name, () => expect(notReady(st)).toEqual(want));
});
