import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox, listNetns, sh } from './index';

describe('test sandbox', () => {
  const sb = new Sandbox('sbx');
  afterAll(() => sb.cleanup());

  it('creates namespaces under the run prefix, links them, and removes them', async () => {
    const a = sb.netns('a');
    const b = sb.netns('b');
    expect(a.name.startsWith(sb.prefix)).toBe(true);
    sb.link(a, 'va', b, 'vb', { aAddr: '198.51.100.1/30', bAddr: '198.51.100.2/30' });
    expect(a.ping('198.51.100.2')).toBe(true);
    const d = sb.daemon('sleep', ['300'], { netns: a });
    expect(sh('ip', ['netns', 'pids', a.name]).stdout.trim().split('\n')).toContain(String(d.pid));
    // daemon() returns only once the child is inside the namespace: no window
    // in which `ip netns pids` (or the namespace cleanup) misses it.
    for (let i = 0; i < 10; i++) {
      const e = sb.daemon('sleep', ['300'], { netns: b });
      expect(sh('ip', ['netns', 'pids', b.name]).stdout.trim().split('\n')).toContain(String(e.pid));
    }
    await sb.cleanup();
    expect(listNetns().filter((n) => n.startsWith(sb.prefix))).toEqual([]);
    expect(d.child.exitCode !== null || d.child.signalCode !== null).toBe(true);
  });
});
