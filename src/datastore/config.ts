/**
 * Datastore configuration, one shape for the CNI config, the daemon config
 * and ternctl: `{"type":"sqlite","path":…}` or
 * `{"type":"etcd","endpoints":[…],"ca":…,"cert":…,"key":…}`; the string form
 * (`--datastore`, TERN_DATASTORE) is a SQLite path or comma-separated etcd URLs.
 */
import * as fs from 'node:fs';
import YAML from 'yaml';
import { TernError, messageOf } from '../lib/errors';
import { DEFAULT_SQLITE_PATH, SqliteStore } from './sqlite-store';
import { EtcdStore } from './etcd-store';
import type { Store } from './types';

export type DatastoreConfig =
  | { type: 'sqlite'; path: string }
  | { type: 'etcd'; endpoints: string[]; ca?: string; cert?: string; key?: string; prefix?: string };

export const DEFAULT_CONFIG_FILE = '/etc/tern/tern.yaml';
export const DEFAULT_DATASTORE: DatastoreConfig = { type: 'sqlite', path: DEFAULT_SQLITE_PATH };

const URL_RE = /^(https?):\/\/[^\s,/]+(:\d+)?\/?$/;

function bad(msg: string): TernError {
  return new TernError('INVALID_CONFIG', `datastore: ${msg}`);
}

function optString(o: Record<string, unknown>, f: string): string | undefined {
  const v = o[f];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw bad(`${f} must be a non-empty string`);
  return v;
}

/** The string form: comma-separated http(s) URLs are etcd, anything else a SQLite path. */
export function parseDatastoreString(s: string): DatastoreConfig {
  const t = s.trim();
  if (t === '') throw bad('empty');
  if (/^https?:\/\//.test(t)) {
    const endpoints = t.split(',').map((u) => u.trim()).filter(Boolean);
    for (const u of endpoints) if (!URL_RE.test(u)) throw bad(`not an etcd URL: ${u}`);
    return { type: 'etcd', endpoints };
  }
  return { type: 'sqlite', path: t };
}

/** The object form, as found in JSON/YAML configs; a bare string is the string form. */
export function parseDatastoreConfig(v: unknown): DatastoreConfig {
  if (typeof v === 'string') return parseDatastoreString(v);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad('must be an object or a string');
  const o = v as Record<string, unknown>;
  // A typo ("pth") must not fall back to the default datastore, which may be another cluster's.
  const known = o.type === 'sqlite' ? ['type', 'path'] : o.type === 'etcd' ? ['type', 'endpoints', 'ca', 'cert', 'key', 'prefix'] : undefined;
  const unknown = known && Object.keys(o).find((k) => !known.includes(k));
  if (unknown) throw bad(`unknown field "${unknown}" (${o.type}: ${known.join(', ')})`);
  switch (o.type) {
    case 'sqlite':
      return { type: 'sqlite', path: optString(o, 'path') ?? DEFAULT_SQLITE_PATH };
    case 'etcd': {
      const eps = typeof o.endpoints === 'string' ? o.endpoints.split(',') : o.endpoints;
      if (!Array.isArray(eps) || eps.length === 0) throw bad('etcd needs a non-empty endpoints list');
      const endpoints = eps.map((e) => {
        if (typeof e !== 'string' || !URL_RE.test(e.trim())) throw bad(`not an etcd URL: ${String(e)}`);
        return e.trim();
      });
      const c: DatastoreConfig = { type: 'etcd', endpoints };
      const ca = optString(o, 'ca');
      const cert = optString(o, 'cert');
      const key = optString(o, 'key');
      const prefix = optString(o, 'prefix');
      if (!!cert !== !!key) throw bad('cert and key go together');
      if ((cert || endpoints.some((e) => e.startsWith('https:'))) && !ca) throw bad('https endpoints need ca');
      if (ca) c.ca = ca;
      if (cert) c.cert = cert;
      if (key) c.key = key;
      if (prefix) c.prefix = prefix;
      return c;
    }
    default:
      throw bad(`unknown type ${JSON.stringify(o.type)} (sqlite or etcd)`);
  }
}

export interface ResolveSources {
  flag?: string;
  env?: NodeJS.ProcessEnv;
  configFile?: string;
}

/**
 * Where ternctl finds the datastore: `--datastore`, then TERN_DATASTORE, then
 * the `datastore` key of /etc/tern/tern.yaml, then the default SQLite path.
 */
export function resolveDatastore(src: ResolveSources = {}): DatastoreConfig {
  if (src.flag) return parseDatastoreString(src.flag);
  const env = (src.env ?? process.env).TERN_DATASTORE;
  if (env) return parseDatastoreString(env);
  const file = src.configFile ?? DEFAULT_CONFIG_FILE;
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new TernError('INVALID_CONFIG', `${file}: ${messageOf(e)}`, { cause: e });
  }
  if (text !== undefined) {
    let doc: unknown;
    try {
      doc = YAML.parse(text);
    } catch (e) {
      throw new TernError('INVALID_CONFIG', `${file}: ${messageOf(e)}`, { cause: e });
    }
    const ds = doc && typeof doc === 'object' ? (doc as Record<string, unknown>).datastore : undefined;
    if (ds !== undefined) {
      try {
        return parseDatastoreConfig(ds);
      } catch (e) {
        throw new TernError('INVALID_CONFIG', `${file}: ${messageOf(e)}`, { cause: e });
      }
    }
  }
  return DEFAULT_DATASTORE;
}

/** `create: false` opens an existing SQLite datastore only. */
export function openStore(c: DatastoreConfig, opts: { create?: boolean } = {}): Store {
  return c.type === 'sqlite' ? new SqliteStore({ path: c.path, mustExist: opts.create === false }) : new EtcdStore(c);
}

/**
 * Open the datastore ternctl resolves (flag, env, config file), run `fn`,
 * always close it. Only commands that store something pass `create: true`:
 * a mistyped path on a read command must fail, not create an empty cluster.
 */
export async function withDatastore<T>(flag: string | undefined, fn: (s: Store) => Promise<T>, opts: { create?: boolean } = {}): Promise<T> {
  const store = openStore(resolveDatastore({ flag }), { create: opts.create ?? false });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
