/** ternctl ipam show/check/release/pool against a real SQLite datastore. */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { register } from '../../src/cli/ipam';
import { SqliteStore } from '../../src/datastore';
import { BlockIpam } from '../../src/ipam/block-ipam';
import { affinityKey, blockKey, handleKey } from '../../src/ipam/model';
import { exitCodeFor } from '../../src/cli/main';
import { Sandbox } from '../sandbox';

const sb = new Sandbox('iipamcli');
afterAll(() => sb.cleanup());

/** Run ternctl (with only the ipam noun) in-process; returns stdout or the thrown error. */
async function ternctl(args: string[]): Promise<{ out: string; err?: unknown }> {
  const program = new Command('ternctl').option('--datastore <x>').option('-o, --output <f>', '', 'table').exitOverride();
  register(program);
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'ternctl', ...args]);
    return { out };
  } catch (err) {
    return { out, err };
  } finally {
    process.stdout.write = write;
  }
}

describe('ternctl ipam', () => {
  const db = path.join(sb.tmpdir(), 'tern.db');
  const key = (c: string) => ({ network: 'net', containerId: c, ifname: 'eth0' });

  it('pool set, then show per pool, node and block (table and json)', async () => {
    expect((await ternctl(['--datastore', db, 'ipam', 'pool', 'set', '10.60.0.0/24', '--block-size', '28', '--reserve', '10.60.0.0'])).err).toBeUndefined();
    const s = new SqliteStore({ path: db });
    const n1 = new BlockIpam({ store: s, node: 'n1' });
    const n2 = new BlockIpam({ store: s, node: 'n2' });
    for (const c of ['a', 'b', 'c']) await n1.allocate({ key: key(c), pools: ['10.60.0.0/24'] });
    await n2.allocate({ key: key('d'), pools: ['10.60.0.0/24'] });
    await s.close();
    const t = await ternctl(['--datastore', db, 'ipam', 'show']);
    expect(t.err).toBeUndefined();
    expect(t.out).toMatch(/10\.60\.0\.0\/24\s+routed\s+enabled\s+2\s+4\s+256\s+1\.6%/);
    expect(t.out).toMatch(/n1\s+1\s+3\s+16\s+0/);
    expect(t.out).toMatch(/10\.60\.0\.16\/28\s+10\.60\.0\.0\/24\s+n2\s+1\s+16/);
    expect(t.out).toMatch(/Fabric routes needed: 2/);
    const j = JSON.parse((await ternctl(['--datastore', db, '-o', 'json', 'ipam', 'show'])).out);
    expect(j.pools[0]).toMatchObject({ pool: '10.60.0.0/24', blocks: 2, used: 4 });
    expect(j.blocks.map((b: { node: string }) => b.node)).toEqual(['n1', 'n2']);
  });

  it('check reports leaks (exit CHECK_FAILED), release --all fixes them', async () => {
    const s = new SqliteStore({ path: db });
    await s.delete(handleKey('net.b.eth0'));
    await s.close();
    const c = await ternctl(['--datastore', db, 'ipam', 'check', '--grace', '0s']);
    expect(c.err).toMatchObject({ code: 'CHECK_FAILED' });
    expect(c.out).toMatch(/leaked address 10\.60\.0\.2 in block 10\.60\.0\.0\/28: handle net\.b\.eth0 does not exist/);
    const r = await ternctl(['--datastore', db, 'ipam', 'release', '--all', '--grace', '0s']);
    expect(r.out).toMatch(/1 fixed, 0 skipped/);
    expect((await ternctl(['--datastore', db, 'ipam', 'check', '--grace', '0s'])).out).toMatch(/ok: no problems found/);
  });

  it('release --handle and --address', async () => {
    const r = await ternctl(['--datastore', db, 'ipam', 'release', '--handle', 'net.a.eth0']);
    expect(r.out).toMatch(/released net\.a\.eth0: 10\.60\.0\.1/);
    expect((await ternctl(['--datastore', db, 'ipam', 'release', '--address', '10.60.0.16'])).out).toMatch(/released 10\.60\.0\.16/);
    expect((await ternctl(['--datastore', db, 'ipam', 'release', '--address', '10.60.0.16'])).err).toMatchObject({ code: 'NOT_FOUND' });
    expect((await ternctl(['--datastore', db, 'ipam', 'release', '--handle', 'net.zz.eth0'])).err).toMatchObject({ code: 'NOT_FOUND' });
    expect((await ternctl(['--datastore', db, 'ipam', 'release'])).err).toMatchObject({ code: 'INVALID_CONFIG' });
    const j = JSON.parse((await ternctl(['--datastore', db, '-o', 'json', 'ipam', 'show'])).out);
    expect(j.pools[0].used).toBe(1);
    // The handle of d went with its address.
    expect((await ternctl(['--datastore', db, 'ipam', 'check', '--grace', '0s'])).out).toMatch(/ok/);
  });
  it('pool set refuses a block-size change on a pool with blocks, and a pool overlapping another (exit 2, both named); ipam check sees the new findings', async () => {
    const db2 = path.join(sb.tmpdir(), 'tern.db');
    expect((await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.244.0.0/16'])).err).toBeUndefined();
    // Without blocks the block size may still change.
    expect((await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.244.0.0/16', '--block-size', '27'])).err).toBeUndefined();
    expect((await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.244.0.0/16', '--block-size', '26'])).err).toBeUndefined();
    const s = new SqliteStore({ path: db2 });
    await new BlockIpam({ store: s, node: 'a' }).allocate({ key: key('a1'), pools: ['10.244.0.0/16'] });
    const resize = await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.244.0.0/16', '--block-size', '28']);
    expect(resize.err).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringMatching(/pool 10\.244\.0\.0\/16: blockSize cannot change from \/26 to \/28 while it has 1 blocks/) });
    expect(exitCodeFor(resize.err)).toBe(2);
    const overlap = await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.244.0.0/24', '--block-size', '28']);
    expect(overlap.err).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('pool 10.244.0.0/24 overlaps pool 10.244.0.0/16; pools must not overlap') });
    expect(exitCodeFor(overlap.err)).toBe(2);
    expect((await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.0.0.0/8'])).err).toMatchObject({ message: expect.stringContaining('overlaps pool 10.244.0.0/16') });
    // Other changes of a pool with blocks are fine, and so is a disjoint pool.
    expect((await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.244.0.0/16', '--community', '65000:1'])).err).toBeUndefined();
    expect((await ternctl(['--datastore', db2, 'ipam', 'pool', 'set', '10.245.0.0/24', '--block-size', '28'])).err).toBeUndefined();
    // A CNI config naming an overlapping pool is refused too, instead of creating it.
    await expect(new BlockIpam({ store: s, node: 'b' }).allocate({ key: key('b1'), pools: ['10.244.0.0/24'] })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('pool 10.244.0.0/24 overlaps pool 10.244.0.0/16') });
    expect((await ternctl(['--datastore', db2, 'ipam', 'check', '--no-routes'])).out).toMatch(/ok: no problems found/);
    // A block an older writer put inside a's block, without a claim: reported, and release adds the missing claim only.
    await s.create(blockKey('10.244.0.0/16', '10.244.0.0/28'), JSON.stringify({ cidr: '10.244.0.0/28', pool: '10.244.0.0/16', affinity: 'b', seq: 0, used: {}, free: [] }));
    await s.create(affinityKey('10.244.0.0/16', '10.244.0.0/28'), 'b');
    const c = await ternctl(['--datastore', db2, 'ipam', 'check', '--no-routes']);
    expect(c.out).toContain('block 10.244.0.0/28 overlaps block 10.244.0.0/26');
    expect(c.out).toContain('block 10.244.0.0/28 has no claim index entry');
    await s.close();
  });
});
