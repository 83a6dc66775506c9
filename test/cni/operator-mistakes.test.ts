/**
 * Issue 11, section 3: operator mistakes that used to lose or split state are
 * refused, with the file, line and field or the path named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { makeNode, ternConfig } from '../sandbox/cni';

describe('operator mistakes', () => {
  const sb = new Sandbox('cnimist');
  let node: Netns;
  let dir: string;
  const ternctl = (...args: string[]) => node.exec(path.join(DIST_BIN, 'ternctl'), args, { timeoutMs: 60_000 });

  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
  });
  afterAll(() => sb.cleanup());

  const nodeYaml = (name: string, body: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, `nodename: n1\nnodenameFile: ${dir}/nodename\nhealthListen: ''\npolicyDir: ''\n${body}`);
    return f;
  };

  it('node.yaml: a mistyped datastore field, an unknown bgp field and a bad log level are refused (exit 2, file:line and field), nothing is created', () => {
    const db = path.join(dir, 'typo.db');
    let r = ternctl('node', 'run', '--config', nodeYaml('typo.yaml', `cniSocket: ${dir}/t.sock\ndatastore:\n  type: sqlite\n  pth: ${db}\n`));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir}/typo.yaml:8: field "datastore.pth": is not a known field`);
    expect(fs.existsSync(db)).toBe(false);
    expect(fs.existsSync(`${dir}/t.sock`)).toBe(false);
    r = ternctl('node', 'run', '--config', nodeYaml('hold.yaml', `cniSocket: ${dir}/t.sock\nbgp:\n  holdtime: 9\n`));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir}/hold.yaml:7: field "bgp.holdtime"`);
    r = ternctl('node', 'run', '--config', nodeYaml('level.yaml', `cniSocket: ${dir}/t.sock\nlogLevel: verbose\n`));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir}/level.yaml:6: field "logLevel": must be one of`);
  });

  it('cniSocket pointing at the daemon\'s own datastore: the daemon refuses to start and the file survives', () => {
    const db = path.join(dir, 'own.db');
    fs.writeFileSync(db, 'precious');
    const r = ternctl('node', 'run', '--config', nodeYaml('own.yaml', `cniSocket: ${db}\ndatastore: {type: sqlite, path: ${db}}\n`));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cniSocket ${db} exists and is not a socket (a regular file); refusing to replace it`);
    expect(fs.readFileSync(db, 'utf8')).toBe('precious');
  });

  it('on stop the daemon removes only its own socket, not a file put at that path meanwhile', async () => {
    const sock = path.join(dir, 'run', 'cni.sock');
    const d = sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', nodeYaml('stop.yaml', `cniSocket: ${sock}\ndatastore: {type: sqlite, path: ${dir}/stop.db}\n`)], { netns: node });
    await waitFor(() => d.output().includes('node daemon started'), { what: 'daemon started', timeoutMs: 30_000 });
    fs.rmSync(sock);
    fs.writeFileSync(sock, 'not the daemon\'s');
    await d.stop('SIGTERM');
    expect(fs.readFileSync(sock, 'utf8')).toBe('not the daemon\'s');
  }, 60_000);

  it('a read command on a mistyped --datastore exits 4 naming the path and creates nothing', () => {
    const r = ternctl('--datastore', '/nonexistent-tern-dir/tern.db', 'node', 'list');
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('datastore /nonexistent-tern-dir/tern.db does not exist');
    expect(fs.existsSync('/nonexistent-tern-dir')).toBe(false);
    const r2 = ternctl('--datastore', path.join(dir, 'nope', 'tern.db'), 'ipam', 'show');
    expect(r2.code).toBe(4);
    expect(fs.existsSync(path.join(dir, 'nope'))).toBe(false);
    // A command that stores something still creates the datastore.
    expect(ternctl('--datastore', path.join(dir, 'new', 'tern.db'), 'ipam', 'pool', 'set', '10.70.0.0/24').code).toBe(0);
    expect(ternctl('--datastore', path.join(dir, 'new', 'tern.db'), 'ipam', 'show').code).toBe(0);
  });

  it('a daemon that dies mid-request: the shim says the connection was closed without an answer, not "Success"', async () => {
    const sock = path.join(dir, 'dying.sock');
    // Reads the request, then closes without answering, as a crashing daemon would.
    const server = net.createServer({ allowHalfOpen: true }, (c) => c.on('end', () => c.destroy()).resume());
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      const conf = ternConfig(dir, { cni_socket: sock });
      const pod = sb.netns('pdie');
      const r = await node.execAsync(path.join(DIST_BIN, 'tern'), [], {
        input: JSON.stringify(conf),
        env: { PATH: process.env.PATH, TERN_ACL_STATE_DIR: process.env.TERN_ACL_STATE_DIR, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'cdie', CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: DIST_BIN },
      });
      expect(r.code).toBe(1);
      const j = JSON.parse(r.stdout);
      expect(j.code).toBe(11);
      expect(j.msg).toBe(`tern: lost the connection while waiting for the answer of the node daemon at ${sock}: the daemon closed the connection without answering (it stopped or crashed mid-request); try again (a DEL cleans up a half-done ADD)`);
    } finally {
      server.close();
    }
  });
});
