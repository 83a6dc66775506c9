import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../src/datastore';
import { Sandbox } from '../sandbox';
import { startEtcd, type EtcdCluster } from '../sandbox/etcd';
import { storeContract } from './contract';

const sb = new Sandbox('ietcds');
let plain: EtcdCluster;
let tls: EtcdCluster;

beforeAll(async () => {
  [plain, tls] = await Promise.all([startEtcd(sb), startEtcd(sb, { tls: true })]);
}, 120_000);
afterAll(() => sb.cleanup());

storeContract('EtcdStore (plain)', () => ({ open: async () => new EtcdStore(plain.storeOptions({ prefix: '/contract' })) }));
storeContract('EtcdStore (TLS client certs)', () => ({ open: async () => new EtcdStore(tls.storeOptions({ prefix: '/contract' })) }));

describe('EtcdStore specifics', () => {
  it('keeps prefixed stores apart on one etcd', async () => {
    const a = new EtcdStore(plain.storeOptions({ prefix: '/tenant-a' }));
    const b = new EtcdStore(plain.storeOptions({ prefix: '/tenant-b' }));
    try {
      await a.create('/k', 'a');
      expect(await b.get('/k')).toBeUndefined();
      await b.create('/k', 'b');
      expect((await a.list('/')).items.map((i) => [i.key, i.value])).toEqual([['/k', 'a']]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refuses a TLS-only etcd without a client certificate', async () => {
    const s = new EtcdStore({ endpoints: tls.endpoints, ca: tls.tls!.ca, timeoutMs: 2000 });
    try {
      await expect(s.get('/k')).rejects.toMatchObject({ code: 'TRY_AGAIN_LATER' });
    } finally {
      await s.close();
    }
  });

  it('rejects half a client key pair as INVALID_CONFIG', () => {
    expect(() => new EtcdStore({ endpoints: tls.endpoints, ca: tls.tls!.ca, cert: tls.tls!.cert })).toThrow(/cert and key/);
  });
});
