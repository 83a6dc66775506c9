import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planPolicyDir, resourceKey, writeResources, endpointResource, POLICY_DIR_SOURCE, type StoredResource } from './store';
import { syncFromStore } from './kernel-sync';
import { detectBackend, netnsExec } from './applier';
import { SqliteStore } from '../datastore';
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

describe('syncFromStore with nothing to program', () => {
  // Stand-ins for the iptables tools on PATH record every call, so the test sees what a sync would have run.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-acl-sync-'));
  const calls = path.join(dir, 'calls');
  const oldPath = process.env.PATH;
  let store: SqliteStore;
  beforeAll(() => {
    for (const fam of ['iptables', 'ip6tables']) {
      for (const b of ['nft', 'legacy']) fs.writeFileSync(path.join(dir, `${fam}-${b}-save`), `#!/bin/sh\necho "$0" >> ${calls}\n`, { mode: 0o755 });
    }
    process.env.PATH = `${dir}:${oldPath}`;
    store = new SqliteStore({ path: path.join(dir, 'tern.db') });
  });
  afterAll(async () => {
    process.env.PATH = oldPath;
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const called = () => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean).length : 0);

  it("choosing a backend runs the four save tools (what the next test must not see)", async () => {
    fs.rmSync(calls, { force: true });
    await detectBackend(netnsExec());
    expect(called()).toBe(4);
  });

  it('runs no iptables tool when the caller declines what it read (a daemon on every endpoint change, no policy in use)', async () => {
    fs.rmSync(calls, { force: true });
    await writeResources(store, 'apply', [endpointResource({ name: 'p1', namespace: 'default', labels: {}, ips: ['10.244.0.2'], hostIface: 'tern0', namedPorts: [] })]);
    const r = await syncFromStore(store, { when: () => false });
    expect(r.report).toBeUndefined();
    expect(r.resources.map((x) => x.kind)).toEqual(['Endpoint']);
    expect(called()).toBe(0);
  });
});
