import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveNodeName } from './nodename';

describe('resolveNodeName: config, then the nodename file, then the hostname', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-node-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'nodename');
  fs.writeFileSync(file, 'from-file\n');
  const hostname = () => 'from-host';
  it.each<[string, { nodename?: string; file: string }, string]>([
    ['config wins', { nodename: 'from-config', file }, 'from-config'],
    ['blank config falls through', { nodename: '  ', file }, 'from-file'],
    ['file next', { file }, 'from-file'],
    ['hostname last', { file: path.join(dir, 'missing') }, 'from-host'],
  ])('%s', (_n, o, want) => expect(resolveNodeName({ ...o, hostname })).toBe(want));
  it('an empty file falls through to the hostname', () => {
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '\n');
    expect(resolveNodeName({ file: empty, hostname })).toBe('from-host');
  });
});
