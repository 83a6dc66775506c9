import * as path from 'node:path';
import { afterAll } from 'vitest';
import { SqliteStore } from '../../src/datastore';
import { Sandbox } from '../sandbox';
import { ipamBehaviour } from './behaviour';

const sb = new Sandbox('iipamsq');
afterAll(() => sb.cleanup());

ipamBehaviour('SQLite', async () => new SqliteStore({ path: path.join(sb.tmpdir(), 'tern.db') }));
