import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, STATE_DIR, listNetns, runPrefix, sh } from '../sandbox';

describe('root network namespace', () => {
  it('links, addresses, routes, rules, iptables, ipsets and sysctls are as before the run', () => {
    const before = fs.readFileSync(path.join(STATE_DIR, 'root-before.txt'), 'utf8');
    const after = sh('bash', [path.join(REPO, 'scripts/root-snapshot.sh')]).stdout;
    expect(after).toBe(before);
  });

  it('no namespace of this run is left behind', () => {
    const prefix = runPrefix();
    expect(listNetns().filter((n) => n.startsWith(prefix))).toEqual([]);
  });

  it('no tern* interface exists in the root namespace', () => {
    expect(sh('ip', ['-o', 'link', 'show']).stdout).not.toMatch(/: tern/);
  });
});
