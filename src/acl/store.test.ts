import { describe, expect, it } from 'vitest';
import { planPolicyDir, resourceKey, POLICY_DIR_SOURCE, type StoredResource } from './store';
import type { Resource } from './parse';

const tenant = (name: string, namespaces: string[]): Resource => ({ kind: 'Tenant', key: name, value: { name, namespaces } } as unknown as Resource);
const stored = (r: Resource, source?: string): StoredResource => JSON.parse(JSON.stringify(source ? { ...r, source } : r));

describe('planPolicyDir: the datastore holds exactly what the watched directory defines', () => {
  const a = tenant('alpha', ['alpha']);
  const b = tenant('beta', ['beta']);
  const table: { name: string; dir: Resource[]; have: StoredResource[]; want: string[] }[] = [
    { name: 'new resources are put, tagged', dir: [a, b], have: [], want: ['put Tenant/alpha', 'put Tenant/beta'] },
    { name: 'unchanged resources write nothing', dir: [a], have: [stored(a, POLICY_DIR_SOURCE)], want: [] },
    { name: 'a changed resource is put again', dir: [tenant('alpha', ['alpha', 'alpha-dev'])], have: [stored(a, POLICY_DIR_SOURCE)], want: ['put Tenant/alpha'] },
    { name: 'a resource gone from the directory is deleted', dir: [a], have: [stored(a, POLICY_DIR_SOURCE), stored(b, POLICY_DIR_SOURCE)], want: ['delete Tenant/beta'] },
    { name: 'resources applied with ternctl are never deleted', dir: [], have: [stored(b)], want: [] },
    { name: 'a file defining a ternctl-applied resource takes it over', dir: [b], have: [stored(b)], want: ['put Tenant/beta'] },
    { name: 'an empty directory removes all it wrote', dir: [], have: [stored(a, POLICY_DIR_SOURCE), stored(b)], want: ['delete Tenant/alpha'] },
  ];
  for (const t of table) {
    it(t.name, () => {
      const ops = planPolicyDir(t.dir, t.have);
      expect(ops.map((o) => `${o.op} ${o.key.replace(/^\/tern\/acl\//, '')}`)).toEqual(t.want);
      for (const o of ops) if (o.op === 'put') expect(JSON.parse(o.value).source).toBe(POLICY_DIR_SOURCE);
    });
  }
  it('is idempotent: applying its own output plans nothing', () => {
    const ops = planPolicyDir([a, b], []);
    const after = ops.map((o) => JSON.parse((o as { value: string }).value) as StoredResource);
    expect(planPolicyDir([b, a], after)).toEqual([]);
    expect(ops.map((o) => o.key)).toEqual([resourceKey(a), resourceKey(b)]);
  });
});
