/**
 * Datastore configuration, one shape for the CNI config, the daemon config
 * and ternctl: `{"type":"sqlite","path":…}` or
 * `{"type":"etcd","endpoints":[…],"ca":…,"cert":…,"key":…}`; the string form
 * (`--datastore`, TERN_DATASTORE) is a SQLite path or comma-separated etcd URLs.
 * Parsing only; finding and opening the store is open.ts.
 */
import { TernError, messageOf } from '../lib/errors';

export type DatastoreConfig =
  | { type: 'sqlite'; path: string }
  | { type: 'etcd'; endpoints: string[]; ca?: string; cert?: string; key?: string; prefix?: string };

export const DEFAULT_CONFIG_FILE = '/etc/tern/tern.yaml';
export const DEFAULT_SQLITE_PATH = '/var/lib/tern/tern.db';
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
/**
 * A config file's `datastore` field (absent: the default SQLite file), with
 * errors naming the field; a SQLite path must be absolute.
 */
export function parseDatastoreField(v: unknown, field = 'datastore'): DatastoreConfig {
  if (v === undefined || v === null) return DEFAULT_DATASTORE;
  const badField = (f: string, why: string) => new TernError('INVALID_CONFIG', `invalid field "${f}": ${why}`);
  let c: DatastoreConfig;
  try {
    c = parseDatastoreConfig(v);
  } catch (e) {
    throw badField(field, messageOf(e).replace(/^datastore: /, ''));
  }
  if (c.type === 'sqlite' && !c.path.startsWith('/')) throw badField(`${field}.path`, 'must be an absolute path');
  return c;
}

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
