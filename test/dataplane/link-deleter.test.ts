import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { REPO, Sandbox, type Netns } from '../sandbox';
import { NetnsHandle, Rtnl } from '../../src/dataplane';
import { deleteLinks } from '../../src/dataplane/link-batch';

/**
 * Pod veth deletion in batches: links regrouped, then deleted as one device
 * group (one kernel wait); links already gone say so; the daemon's worker
 * thread does the same and ends cleanly.
 */
const sb = new Sandbox('ldel');
let ns: Netns;
let handle: NetnsHandle;
let rt: Rtnl;

const veths = (prefix: string, n: number) => {
  for (let i = 0; i < n; i++) ns.ip('link', 'add', `${prefix}${i}`, 'type', 'veth', 'peer', 'name', `${prefix}p${i}`);
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
};
const links = () => (ns.ipJson('link', 'show') as { ifname: string }[]).map((l) => l.ifname);

beforeAll(() => {
  ns = sb.netns('n');
  ns.ip('link', 'add', 'keep0', 'type', 'veth', 'peer', 'name', 'keep1'); // not asked for: must stay
  handle = NetnsHandle.open(ns.path);
  rt = Rtnl.open(handle);
});
afterAll(async () => {
  rt.close();
  handle.close();
  await sb.cleanup();
});

describe('deleteLinks', () => {
  it('deletes 20 veths as one group, with their peers, and nothing else', async () => {
    const names = veths('tb', 20);
    const r = await deleteLinks(rt, names);
    expect(r).toEqual(names.map(() => ({ existed: true })));
    expect(links().filter((l) => l.startsWith('tb'))).toEqual([]);
    expect(links()).toEqual(expect.arrayContaining(['keep0', 'keep1']));
  });
  it('a name that is gone is reported as such, in its place; the others go', async () => {
    const names = veths('tc', 3);
    const r = await deleteLinks(rt, ['tcgone', ...names, 'tcgone2']);
    expect(r).toEqual([{ existed: false }, { existed: true }, { existed: true }, { existed: true }, { existed: false }]);
    expect(links().filter((l) => l.startsWith('tc'))).toEqual([]);
  });
  it('one name: a plain delete', async () => {
    const [name] = veths('td', 1);
    expect(await deleteLinks(rt, [name])).toEqual([{ existed: true }]);
    expect(await deleteLinks(rt, [name])).toEqual([{ existed: false }]);
  });
});

describe('LinkDeleter (the daemon build: a worker thread)', () => {
  it('20 concurrent deletions in batches; the process ends with exit code 0 after close()', async () => {
    const names = veths('tw', 20);
    const script = `
      const { LinkDeleter } = require(${JSON.stringify(path.join(REPO, 'dist/src/dataplane/link-deleter.js'))});
      const d = new LinkDeleter();
      Promise.all(${JSON.stringify([...names, 'twgone'])}.map((n) => d.delete(n)))
        .then(async (r) => { await d.close(); console.log(JSON.stringify(r)); });`;
    const out = await ns.execAsync('node', ['-e', script], { timeoutMs: 30_000 });
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([...names.map(() => true), false]);
    expect(links().filter((l) => l.startsWith('tw'))).toEqual([]);
    expect(links()).toEqual(expect.arrayContaining(['keep0', 'keep1']));
  });
});
