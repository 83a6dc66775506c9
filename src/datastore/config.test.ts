import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_DATASTORE, parseDatastoreConfig, parseDatastoreString } from './config';
import { resolveDatastore } from './open';

describe('parseDatastoreString', () => {
  const cases: [string, unknown][] = [
    ['/var/lib/tern/tern.db', { type: 'sqlite', path: '/var/lib/tern/tern.db' }],
    ['./local.db', { type: 'sqlite', path: './local.db' }],
    ['http://127.0.0.1:2379', { type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }],
    ['https://10.0.0.1:2379, https://10.0.0.2:2379', { type: 'etcd', endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'] }],
  ];
  it.each(cases)('%s', (s, want) => expect(parseDatastoreString(s)).toEqual(want));
  it.each(['', '   ', 'http://a b:1', 'http://h:1,ftp://x'])('rejects %j', (s) => expect(() => parseDatastoreString(s)).toThrow(/datastore/));
});

describe('parseDatastoreConfig', () => {
  it.each<[unknown, unknown]>([
    [{ type: 'sqlite' }, DEFAULT_DATASTORE],
    [{ type: 'sqlite', path: '/tmp/x.db' }, { type: 'sqlite', path: '/tmp/x.db' }],
    [{ type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }, { type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }],
    [
      { type: 'etcd', endpoints: ['https://127.0.0.1:2379'], ca: '/ca', cert: '/c', key: '/k' },
      { type: 'etcd', endpoints: ['https://127.0.0.1:2379'], ca: '/ca', cert: '/c', key: '/k' },
    ],
    ['http://h:1', { type: 'etcd', endpoints: ['http://h:1'] }],
  ])('%j', (v, want) => expect(parseDatastoreConfig(v)).toEqual(want));

  it.each<[unknown, RegExp]>([
    [{ type: 'mysql' }, /unknown type/],
    [{ type: 'etcd' }, /endpoints/],
    [{ type: 'etcd', endpoints: [] }, /endpoints/],
    [{ type: 'etcd', endpoints: ['127.0.0.1:2379'] }, /not an etcd URL/],
    [{ type: 'etcd', endpoints: ['https://h:1'] }, /need ca/],
    [{ type: 'etcd', endpoints: ['https://h:1'], ca: '/ca', cert: '/c' }, /cert and key/],
    [{ type: 'sqlite', path: 3 }, /path/],
    [[1], /object/],
    [null, /object/],
  ])('rejects %j', (v, re) => {
    expect(() => parseDatastoreConfig(v)).toThrow(re);
    try {
      parseDatastoreConfig(v);
    } catch (e) {
      expect((e as { code: string }).code).toBe('INVALID_CONFIG');
    }
  });
});

describe('resolveDatastore: --datastore, then TERN_DATASTORE, then tern.yaml, then the default', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-ds-'));
  const yaml = path.join(dir, 'tern.yaml');
  fs.writeFileSync(yaml, 'datastore:\n  type: etcd\n  endpoints: [http://10.1.1.1:2379]\n');
  const env = { TERN_DATASTORE: '/env.db' };
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  it('flag wins', () => expect(resolveDatastore({ flag: '/flag.db', env, configFile: yaml })).toEqual({ type: 'sqlite', path: '/flag.db' }));
  it('then the environment', () => expect(resolveDatastore({ env, configFile: yaml })).toEqual({ type: 'sqlite', path: '/env.db' }));
  it('then the config file', () => expect(resolveDatastore({ env: {}, configFile: yaml })).toEqual({ type: 'etcd', endpoints: ['http://10.1.1.1:2379'] }));
  it('then the default', () => expect(resolveDatastore({ env: {}, configFile: path.join(dir, 'missing.yaml') })).toEqual(DEFAULT_DATASTORE));
  it('a string datastore in the file is the string form', () => {
    const f = path.join(dir, 's.yaml');
    fs.writeFileSync(f, 'datastore: /srv/tern.db\n');
    expect(resolveDatastore({ env: {}, configFile: f })).toEqual({ type: 'sqlite', path: '/srv/tern.db' });
  });
  it('a broken file is INVALID_CONFIG naming the file', () => {
    const f = path.join(dir, 'bad.yaml');
    fs.writeFileSync(f, 'datastore: {type: nope}\n');
    expect(() => resolveDatastore({ env: {}, configFile: f })).toThrow(/bad\.yaml/);
  });
});
