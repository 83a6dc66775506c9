/**
 * ternctl's conventions: every command's error paths give the documented exit
 * code (0 ok, 1 failed, 2 usage or invalid input, 3 not found, 4 datastore
 * unavailable), -o json errors are one JSON document on stdout, every leaf has
 * an example, `version` and the bash completion come from the command tree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram, commandPath, leaves } from '../../src/cli/main';
import { examplesOf } from '../../src/cli/output';
import { SqliteStore } from '../../src/datastore';
import { endpointResource, writeResources } from '../../src/acl';
import { DIST_BIN, Sandbox, sh } from '../sandbox';
import { ternctl } from './run';

const sb = new Sandbox('hcliconv');
let dir: string;
let db: string;
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

beforeAll(async () => {
  dir = sb.tmpdir();
  db = path.join(dir, 'tern.db');
  // A datastore path under a regular file can never be opened (or created).
  fs.writeFileSync(path.join(dir, 'plain'), '');
  const s = new SqliteStore({ path: db });
  await writeResources(s, 'apply', [endpointResource({ namespace: 'prod', name: 'web-1', ips: ['10.0.0.10'], hostIface: 'tern0', labels: {}, namedPorts: [] } as never)]);
  await s.close();
});
afterAll(() => sb.cleanup());

describe('exit codes on every command error path', () => {
  // [args, exit code]; "$db" is a datastore, "$dir" a scratch directory.
  const table: [string, () => string[], number][] = [
    ['unknown command', () => ['frobnicate'], 2],
    ['unknown option', () => ['node', 'list', '--frob'], 2],
    ['unknown output format', () => ['-o', 'xml', 'version'], 2],
    ['yaml is a known format', () => ['-o', 'yaml', 'version'], 0],
    ['no command', () => [], 2],
    ['version', () => ['version'], 0],
    ['--version', () => ['--version'], 0],
    ['--help', () => ['--help'], 0],
    ['completion', () => ['completion', 'bash'], 0],
    ['get: unknown kind', () => ['--datastore', db, 'get', 'frobs'], 2],
    ['get: no such object', () => ['--datastore', db, 'get', 'ippool', '10.9.0.0-16'], 3],
    ['get: datastore unavailable', () => ['--datastore', `${dir}/plain/tern.db`, 'get', 'tier'], 4],
    ['apply: file missing', () => ['--datastore', db, 'apply', '-f', `${dir}/missing.yaml`], 3],
    ['apply: invalid file', () => ['--datastore', db, 'apply', '-f', file('bad-pool.yaml', 'apiVersion: tern.io/v1\nkind: IPPool\nspec: {cidr: 10.0.0.0/16, blockSize: 8}\n')], 2],
    ['delete: no such object', () => ['--datastore', db, 'delete', 'tier', 'gold'], 3],
    ['delete: neither KIND NAME nor -f', () => ['--datastore', db, 'delete'], 2],
    ['delete: endpoints are read-only', () => ['--datastore', db, 'delete', 'workloadendpoint', 'web-1', '-n', 'prod'], 2],
    ['node run: missing --config', () => ['node', 'run'], 2],
    ['node run: config file missing', () => ['node', 'run', '--config', `${dir}/missing.yaml`], 3],
    ['node run: invalid config', () => ['node', 'run', '--config', file('bad-node.yaml', 'cniSocket: relative\n')], 2],
    ['node list: ok', () => ['--datastore', db, 'node', 'list'], 0],
    ['node list: datastore unavailable', () => ['--datastore', `${dir}/plain/tern.db`, 'node', 'list'], 4],
    ['node list: bad datastore URL', () => ['--datastore', 'http://', 'node', 'list'], 2],
    ['node remove: no such node', () => ['--datastore', db, 'node', 'remove', 'ghost'], 3],
    ['status: no daemon answers', () => ['status', '--url', 'http://127.0.0.1:1'], 1],
    ['status: config missing', () => ['status', '--config', `${dir}/missing.yaml`], 3],
    ['status: health endpoint off', () => ['status', '--config', file('nohealth.yaml', 'healthListen: ""\n')], 2],
    ['endpoint list: ok', () => ['--datastore', db, 'endpoint', 'list'], 0],
    ['endpoint label: no such endpoint', () => ['--datastore', db, 'endpoint', 'label', 'prod/ghost', 'app=web'], 3],
    ['endpoint label: bad label', () => ['--datastore', db, 'endpoint', 'label', 'prod/web-1', 'a=b=c'], 2],
    ['endpoint ports: bad port', () => ['--datastore', db, 'endpoint', 'ports', 'prod/web-1', 'http:tcp:99999'], 2],
    ['bgp serve: config missing', () => ['bgp', 'serve', '--config', `${dir}/missing.yaml`], 3],
    ['bgp serve: invalid config', () => ['bgp', 'serve', '--config', file('bad-bgp.yaml', 'asn: 0\n')], 2],
    ['bgp announce: file missing', () => ['bgp', 'announce', '--socket', `${dir}/bgp.sock`, '--file', `${dir}/missing.txt`], 3],
    ['bgp announce: bad prefix', () => ['bgp', 'announce', '--socket', `${dir}/bgp.sock`, '--file', file('bad-prefix.txt', '10.0.0.0/24\n10.0.0.0/33\n')], 2],
    ['bgp withdraw: no speaker', () => ['bgp', 'withdraw', '--socket', `${dir}/bgp.sock`, '--file', file('ok-prefix.txt', '10.0.0.0/24\n')], 3],
    ['bgp apply: file missing', () => ['--datastore', db, 'bgp', 'apply', '-f', `${dir}/missing.yaml`], 3],
    ['bgp apply: invalid file', () => ['--datastore', db, 'bgp', 'apply', '-f', file('bad-bgppeer.yaml', 'apiVersion: tern.io/v1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {asNumber: nope}\n')], 2],
    ['bgp get: datastore unavailable', () => ['--datastore', `${dir}/plain/tern.db`, 'bgp', 'get'], 4],
    ['bgp delete: no such peer', () => ['--datastore', db, 'bgp', 'delete', 'BGPPeer', 'ghost'], 3],
    ['bgp delete: bad kind', () => ['--datastore', db, 'bgp', 'delete', 'Router', 'x'], 2],
    ['bgp ready: no speaker', () => ['bgp', 'ready', '--socket', `${dir}/bgp.sock`], 3],
    ['bgp peers: no speaker', () => ['bgp', 'peers', '--socket', `${dir}/bgp.sock`], 3],
    ['bgp peers: node config missing', () => ['bgp', 'peers', '--config', `${dir}/missing.yaml`], 3],
    ['bgp routes: bad prefix', () => ['bgp', 'routes', '10.0.0.0/33', '--socket', `${dir}/bgp.sock`], 2],
    ['bgp stats: socket not answering', () => ['bgp', 'stats', '--socket', file('not-a-socket', '')], 1],
    ['doctor: namespace missing', () => ['doctor', '--netns', '/run/netns/hcli-missing'], 3],
    ['policy validate: file missing', () => ['policy', 'validate', '-f', `${dir}/missing.yaml`], 3],
    ['policy validate: invalid file', () => ['policy', 'validate', '-f', file('bad-policy.yaml', 'kind: Tier\napiVersion: tern.io/v1\nmetadata: {name: x}\nspec: {order: nope}\n')], 2],
    ['policy validate: no -f', () => ['policy', 'validate'], 2],
    ['policy show: file missing', () => ['policy', 'show', '-f', `${dir}/missing.yaml`], 3],
    ['policy explain: no such pod', () => ['--datastore', db, 'policy', 'explain', '--from', 'prod/ghost', '--to', 'prod/web-1'], 3],
    ['policy explain: bad port', () => ['--datastore', db, 'policy', 'explain', '--from', 'prod/web-1', '--to', 'prod/web-1', '--port', 'x/tcp'], 2],
    ['policy apply: invalid file', () => ['--datastore', db, 'policy', 'apply', '-f', `${dir}/bad-policy.yaml`], 2],
    ['policy delete: file missing', () => ['--datastore', db, 'policy', 'delete', '-f', `${dir}/missing.yaml`], 3],
    ['policy sync: datastore unavailable', () => ['--datastore', `${dir}/plain/tern.db`, 'policy', 'sync', '--netns', '/run/netns/hcli-missing'], 4],
    ['ipam show: ok', () => ['--datastore', db, 'ipam', 'show'], 0],
    ['ipam check: bad duration', () => ['--datastore', db, 'ipam', 'check', '--grace', 'soon'], 2],
    ['ipam check: --live file missing', () => ['--datastore', db, 'ipam', 'check', '--live', `${dir}/missing.txt`], 3],
    ['ipam release: nothing chosen', () => ['--datastore', db, 'ipam', 'release'], 2],
    ['ipam release: no such handle', () => ['--datastore', db, 'ipam', 'release', '--handle', 'net.x.eth0'], 3],
    ['ipam release: address not allocated', () => ['--datastore', db, 'ipam', 'release', '--address', '10.9.9.9'], 3],
    ['ipam pool set: bad CIDR', () => ['--datastore', db, 'ipam', 'pool', 'set', '10.0.0.0/33'], 2],
    ['ipam pool set: bad mode', () => ['--datastore', db, 'ipam', 'pool', 'set', '10.0.0.0/24', '--mode', 'mesh'], 2],
  ];
  for (const [name, args, code] of table) {
    it(`${name}: exit ${code}`, async () => {
      const r = await ternctl(...args());
      expect(r.code, `${r.out}${r.err}`).toBe(code);
    });
  }

  it('every leaf command has an error path in the table above', () => {
    const covered = new Set(table.map(([, args]) => args().filter((a) => /^[a-z][a-z-]*$/.test(a)).join(' ')));
    for (const leaf of leaves(buildProgram())) {
      const p = commandPath(leaf);
      expect([...covered].some((c) => c.startsWith(p)), p).toBe(true);
    }
  });
});

describe('-o json errors', () => {
  it('are one JSON document on stdout with code, message and field', async () => {
    const r = await ternctl('-o', 'json', 'node', 'run', '--config', `${dir}/bad-node.yaml`);
    expect(r.code).toBe(2);
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toEqual({ error: { code: 'INVALID_CONFIG', message: expect.stringContaining('cniSocket'), field: 'cniSocket' } });
  });
  it('usage errors too', async () => {
    const r = await ternctl('-o', 'json', 'node', 'frob');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out).error.code).toBe('USAGE');
  });
  it('policy validate -o json on an invalid file: {valid: false, errors}', async () => {
    const r = await ternctl('-o', 'json', 'policy', 'validate', '-f', `${dir}/bad-policy.yaml`);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out)).toEqual({ valid: false, errors: [{ file: `${dir}/bad-policy.yaml`, line: 4, field: 'spec.order', message: expect.any(String) }] });
  });
  it('a missing file names the file, once', async () => {
    const r = await ternctl('policy', 'validate', '-f', `${dir}/missing.yaml`);
    expect(r.err).toBe(`ternctl: ${dir}/missing.yaml: no such file or directory\n`);
  });
});

describe('help', () => {
  it('every leaf command has an example in its --help', () => {
    for (const leaf of leaves(buildProgram())) {
      let text = '';
      leaf.configureOutput({ writeOut: (s) => void (text += s) });
      leaf.outputHelp();
      expect(text, commandPath(leaf)).toMatch(/\nExamples?:\n {2}ternctl /);
      expect(examplesOf.get(leaf)?.length, commandPath(leaf)).toBeGreaterThan(0);
    }
  });
  it('the top-level help lists every command with an example', async () => {
    const r = await ternctl('--help');
    for (const leaf of leaves(buildProgram())) expect(r.out).toMatch(new RegExp(`\\n  ${commandPath(leaf)} +${examplesOf.get(leaf)![0].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`));
  });
  it("the README's command table names every command", () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## ternctl'), readme.indexOf('\n## ', readme.indexOf('## ternctl') + 5));
    for (const leaf of leaves(buildProgram())) {
      const [noun, verb] = commandPath(leaf).split(' ');
      const cells = section.split('\n').filter((l) => l.startsWith(`| \`ternctl ${noun}`)).map((l) => l.split(' | ')[0]);
      const row = cells.find((c) => !verb || new RegExp(`\\b${verb}\\b`).test(c.slice(`| \`ternctl ${noun}`.length)));
      expect(row, commandPath(leaf)).toBeDefined();
    }
  });
});

describe('version and completion (the built binary)', () => {
  const bin = path.join(DIST_BIN, 'ternctl');
  it('version: version, git commit, Node and CNI versions; --version says the same', () => {
    const commit = sh('git', ['-C', path.join(__dirname, '../..'), 'rev-parse', 'HEAD']).stdout.trim();
    const v = JSON.parse(sh(bin, ['version', '-o', 'json']).stdout);
    expect(v).toEqual({ version: JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')).version, commit: expect.stringMatching(/^[0-9a-f]{40}$/), node: process.version, cniVersions: expect.arrayContaining(['0.4.0', '1.0.0', '1.1.0']) });
    // The build embeds the commit it was built from: a real commit of this repository, HEAD when built after the last commit.
    expect(v.commit).toBe(JSON.parse(fs.readFileSync(path.join(DIST_BIN, '..', 'build-info.json'), 'utf8')).commit);
    expect(sh('git', ['-C', path.join(__dirname, '../..'), 'merge-base', '--is-ancestor', v.commit, commit]).code).toBe(0);
    const text = sh(bin, ['--version']).stdout;
    expect(text).toContain(`commit ${v.commit}`);
    expect(text).toBe(sh(bin, ['version']).stdout);
  });
  it('bash completion completes commands, subcommands, options and output formats', () => {
    const script = path.join(dir, 'completion.bash');
    fs.writeFileSync(script, sh(bin, ['completion', 'bash']).stdout);
    const complete = (line: string) => {
      const words = line.split(' ');
      const r = sh('bash', ['-c', `source ${script}; complete -p ternctl; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ternctl; printf '%s\\n' "\${COMPREPLY[@]}"`]);
      expect(r.code, r.stderr).toBe(0);
      const [reg, ...out] = r.stdout.trim().split('\n');
      expect(reg).toBe('complete -o default -F _ternctl ternctl');
      return out;
    };
    expect(complete('ternctl ')).toEqual(expect.arrayContaining(['node', 'status', 'bgp', 'policy', 'ipam', 'version', 'completion', '--datastore', '--output']));
    expect(complete('ternctl bgp p')).toEqual(['peers']);
    expect(complete('ternctl --datastore /x ipam pool ')).toEqual(expect.arrayContaining(['set']));
    expect(complete('ternctl ipam pool set 10.0.0.0/16 --block')).toEqual(['--block-size']);
    expect(complete('ternctl -o ')).toEqual(['table', 'wide', 'json', 'yaml']);
    expect(complete('ternctl node list -o y')).toEqual(['yaml']);
    expect(complete('ternctl get ')).toEqual(expect.arrayContaining(['ippool', 'networkpolicy', 'globalnetworkpolicy', 'tier', 'tenant', 'clustersettings', 'node', 'workloadendpoint', '--namespace']));
    expect(complete('ternctl delete gl')).toEqual(['globalnetworkpolicy']);
    expect(complete('ternctl apply -f ')).toEqual([]); // bash then completes file names (-o default)
  });
});
