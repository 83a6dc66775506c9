/** ternctl ipam show/check/release/pool against a real SQLite datastore. */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { register } from '../../src/cli/ipam';
import { SqliteStore } from '../../src/datastore';
import { BlockIpam } from '../../src/ipam/block-ipam';
import { handleKey } from '../../src/ipam/model';
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
});
