/** ternctl policy validate/show/explain/apply/delete, run in-process through the real program. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { Sandbox } from '../sandbox';
import { main } from '../../src/cli/main';

const GOOD = path.join(__dirname, 'corpus', 'good', 'shop.yaml');
const BAD = path.join(__dirname, 'corpus', 'bad', 'bad-protocol.yaml');
const sb = new Sandbox('acli');

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'ternctl', ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

let db: string;
beforeAll(() => {
  db = path.join(sb.tmpdir(), 'tern.db');
});
afterAll(async () => {
  await sb.cleanup();
});

describe('ternctl policy', () => {
  it('validate accepts a good file and counts what it holds', async () => {
    const r = await run('policy', 'validate', '-f', GOOD);
    expect(r).toMatchObject({ code: 0 });
    expect(r.out).toContain('valid: 5 resources');
  });

  it('validate rejects a bad file with file, line and field, exit code 2', async () => {
    const r = await run('policy', 'validate', '-f', GOOD, '-f', BAD);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${BAD}:10: spec.ingress[0].ports[0].protocol`);
  });

  it('show renders chains and sets', async () => {
    const r = await run('policy', 'show', '-f', GOOD, '--family', '4');
    expect(r.code).toBe(0);
    expect(r.out).toContain(':tern-FORWARD - [0:0]');
    // web-1's ingress chain, reached by its host veth, holds the one-rule policy itself.
    expect(r.out).toMatch(/-A tern-to-wl -m comment --comment "tern:[0-9a-f]{16}" -o tern0000000000a -g tern-tw-tern0000000000a/);
    expect(r.out).toMatch(/-A tern-tw-tern0000000000a -m comment --comment "tern:[0-9a-f]{16}" -p tcp -m set --match-set tern-s4-[0-9a-f]{16} src -m multiport --dports 443 -j ACCEPT/);
    expect(r.out).toContain('add tern-ep4 10.0.0.10/32,tern0000000000a');
    expect(r.out).not.toContain('IPv6');
  });

  it('explain names the policy and rule that decide, and the verdict', async () => {
    const allow = await run('policy', 'explain', '-f', GOOD, '--from', 'shop/client-1', '--to', 'web-1', '--port', '443/tcp');
    expect(allow.code).toBe(0);
    expect(allow.out).toContain('KubernetesNetworkPolicy shop/web-from-clients, ingress rule 0 allows');
    expect(allow.out).toContain('verdict: ALLOW');
    const deny = await run('policy', 'explain', '-f', GOOD, '--from', '10.0.0.12', '--to', '10.0.0.10', '--port', '443/tcp');
    expect(deny.out).toContain('end-of-tier deny');
    expect(deny.out).toContain('verdict: DENY');
    const json = await run('-o', 'json', 'policy', 'explain', '-f', GOOD, '--from', 'db-1', '--to', 'client-1', '--port', 'icmp');
    expect(JSON.parse(json.out).verdict).toBe('allow');
    expect((await run('policy', 'explain', '-f', GOOD, '--from', 'nobody', '--to', 'web-1')).code).toBe(3);
  });

  it('apply stores the resources and --sync programs a node namespace; delete removes them', async () => {
    const node = sb.netns('node');
    const a = await run('--datastore', db, 'policy', 'apply', '-f', GOOD, '--sync', '--netns', node.path);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(a.out).toContain('applied 5 resources');
    const saved = node.must('iptables-nft-save', ['-t', 'filter']);
    expect(saved).toContain('-A FORWARD -m comment --comment "tern:hook" -j tern-FORWARD');
    expect(saved).toMatch(/--dports 443/);
    expect(node.must('ipset', ['list', '-n'])).toContain('tern-ep4');
    // show without -f reads the datastore
    expect((await run('--datastore', db, 'policy', 'show', '--family', '4')).out).toContain('--dports 443');
    // a bad file changes nothing
    expect((await run('--datastore', db, 'policy', 'apply', '-f', BAD, '--sync', '--netns', node.path)).code).toBe(2);
    const strip = (t: string) => t.replace(/^#.*\n/gm, '');
    expect(strip(node.must('iptables-nft-save', ['-t', 'filter']))).toBe(strip(saved));
    const d = await run('--datastore', db, 'policy', 'delete', '-f', GOOD, '--sync', '--netns', node.path);
    expect(d.code).toBe(0);
    expect(node.must('iptables-nft-save', ['-t', 'filter'])).not.toMatch(/--dports 443/);
  });
});
