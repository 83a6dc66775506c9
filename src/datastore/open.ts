/** Finding the datastore (flag, environment, config file) and opening it. */
import * as fs from 'node:fs';
import YAML from 'yaml';
import { TernError, messageOf } from '../lib/errors';
import { DEFAULT_CONFIG_FILE, DEFAULT_DATASTORE, parseDatastoreConfig, parseDatastoreString, type DatastoreConfig } from './config';
import { openStore } from './open-store';
import type { Store } from './types';

export { openStore };

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

/**
 * Open the datastore ternctl resolves (flag, env, config file), run `fn`,
 * always close it. Only commands that store something pass `create: true`.
 */
export async function withDatastore<T>(flag: string | undefined, fn: (s: Store) => Promise<T>, opts: { create?: boolean } = {}): Promise<T> {
  const store = openStore(resolveDatastore({ flag }), { create: opts.create ?? false });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
