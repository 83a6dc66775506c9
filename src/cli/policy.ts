/**
 * ternctl policy: validate policy files, show the chains and sets they compile
 * to, explain the verdict for one packet, and apply/delete them in the
 * datastore (optionally bringing one namespace's rules in sync at once).
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import {
  compileRuleset,
  explainPacket,
  findEndpoint,
  parsePortProto,
  PolicyFileError,
  renderIpsets,
  renderIptables,
  toInput,
  type Resource,
  storedResources,
  syncFromStore,
  type ApplyReport,
} from '../acl';
import type { Store } from '../datastore';
import { readObjects, report, writeObjects } from './resources';
import { AlreadyReported, emit, examplesFor, formatOf, withStore } from './output';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The ACL resources of files, read as `ternctl apply -f` reads them (a missing path is "not found", exit 3). */
export function load(files: string[] | undefined): Resource[] {
  return readObjects(files ?? []).acl;
}

/** Resources to work on: the given files, or everything in the datastore. */
async function source(cmd: Command, files: string[] | undefined): Promise<Resource[]> {
  if (files?.length) return load(files);
  return withStore(cmd, storedResources);
}

/** Program this node from the datastore (read under the ACL lock, so concurrent appliers lose nothing). */
async function sync(store: Store, netns: string | undefined): Promise<ApplyReport> {
  if (netns && !fs.existsSync(netns)) throw new TernError('NOT_FOUND', `network namespace ${netns} does not exist`);
  return (await syncFromStore(store, { netnsPath: netns })).report!;
}

const syncLine = (r: ApplyReport) => `rules in sync (${r.backend}): ${r.chainsWritten} chains and ${r.setsWritten} sets written, ${r.setsDestroyed} sets removed\n`;

export function register(program: Command): void {
  const policy = program.command('policy').description('ACL policies: validate, show, explain, apply, delete, sync');
  const json = (cmd: Command) => formatOf(cmd) === 'json' || formatOf(cmd) === 'yaml';

  policy
    .command('validate')
    .description('check policy files, or any file apply -f takes (YAML/JSON, multi-document); any problem rejects them all with file, line and field')
    .requiredOption('-f, --file <path>', 'policy file or directory (repeatable)', collect)
    .action(function (this: Command, o: { file: string[] }) {
      let objs: ReturnType<typeof readObjects>;
      try {
        objs = readObjects(o.file);
      } catch (e) {
        // The verdict is the answer: {"valid": false, "errors": [...]}, then exit 2 without a second report.
        if (!(e instanceof PolicyFileError) || !json(this)) throw e;
        emit(this, { valid: false, errors: e.problems }, () => '');
        throw new AlreadyReported(e);
      }
      const byKind = new Map<string, number>();
      for (const k of [...objs.acl.map((r) => r.kind as string), ...objs.pools.map(() => 'IPPool'), ...objs.nodes.map(() => 'Node'), ...objs.bgp.map((r) => r.kind)]) byKind.set(k, (byKind.get(k) ?? 0) + 1);
      const n = [...byKind.values()].reduce((a, b) => a + b, 0);
      emit(this, { valid: true, resources: Object.fromEntries(byKind) }, () => `valid: ${n} resources (${[...byKind].map(([k, c]) => `${c} ${k}`).join(', ')})\n`);
    });

  policy
    .command('show')
    .description('print the iptables-restore and ipset text the policies compile to (files, or the datastore without -f)')
    .option('-f, --file <path>', 'policy/endpoint file or directory (repeatable)', collect)
    .option('--family <4|6>', 'only this IP family')
    .action(async function (this: Command, o: { file?: string[]; family?: string }) {
      const rs = compileRuleset(toInput(await source(this, o.file)));
      const fams = o.family === '4' ? [rs.v4] : o.family === '6' ? [rs.v6] : [rs.v4, rs.v6];
      if (json(this)) {
        process.stdout.write(JSON.stringify(fams, null, 2) + '\n');
        return;
      }
      for (const f of fams) process.stdout.write(`# IPv${f.family} iptables-restore\n${renderIptables(f)}# IPv${f.family} ipset restore\n${renderIpsets(f)}`);
    });

  policy
    .command('explain')
    .description('which tier, policy and rule decide one packet, and the verdict')
    .requiredOption('--from <pod|ip>', 'source: namespace/pod, pod, or an address')
    .requiredOption('--to <pod|ip>', 'destination: namespace/pod, pod, or an address')
    .option('--port <port/proto>', 'e.g. 443/tcp, 53/udp, icmp', '80/tcp')
    .option('-f, --file <path>', 'policy/endpoint file or directory (repeatable)', collect)
    .action(async function (this: Command, o: { from: string; to: string; port: string; file?: string[] }) {
      const input = toInput(await source(this, o.file));
      const src = findEndpoint(input, o.from);
      const dst = findEndpoint(input, o.to);
      if (!src) throw new TernError('NOT_FOUND', `no single endpoint or address matches --from ${o.from}`);
      if (!dst) throw new TernError('NOT_FOUND', `no single endpoint or address matches --to ${o.to}`);
      const pp = parsePortProto(o.port);
      const okPort = pp.port === undefined || (Number.isInteger(pp.port) && pp.port >= 1 && pp.port <= 65535);
      if (!okPort || !Number.isInteger(pp.protocol) || pp.protocol < 0 || pp.protocol > 255) throw new TernError('INVALID_CONFIG', `--port ${o.port}: use port/protocol (443/tcp, 53/udp) or a protocol (icmp)`);
      const icmp = pp.protocol === 1 || pp.protocol === 58 ? { type: pp.protocol === 1 ? 8 : 128, code: 0 } : undefined;
      const ex = explainPacket(input, { src: src.ip, dst: dst.ip, protocol: pp.protocol, dstPort: pp.port, icmp });
      if (json(this)) {
        process.stdout.write(JSON.stringify(ex, null, 2) + '\n');
        return;
      }
      for (const s of ex.steps) process.stdout.write(`${s.direction.padEnd(7)} ${s.endpoint}: ${s.tier ? `tier ${s.tier}, ` : ''}${s.policy ? `${s.policy}, ` : ''}${s.detail}\n`);
      process.stdout.write(`verdict: ${ex.verdict.toUpperCase()}\n`);
    });

  // Aliases of `ternctl apply|delete -f` (same reader and writer), with --sync for nodes without a daemon.
  const mutate = (name: 'apply' | 'delete') =>
    policy
      .command(name)
      .description(name === 'apply' ? 'store the resources of the files in the datastore, all or none (as ternctl apply -f)' : 'remove the resources named in the files from the datastore (as ternctl delete -f)')
      .requiredOption('-f, --file <path>', 'policy file or directory (repeatable)', collect)
      .option('--sync', 'then compile everything stored and program this node (no node daemon)')
      .option('--netns <path>', 'with --sync: program this network namespace instead of the current one')
      .action(async function (this: Command, o: { file: string[]; sync?: boolean; netns?: string }) {
        const objs = readObjects(o.file);
        await withStore(this, async (store) => {
          report(this, name === 'apply' ? 'applied' : 'deleted', await writeObjects(store, name, objs));
          if (o.sync) process.stdout.write(syncLine(await sync(store, o.netns)));
        }, true);
      });
  mutate('apply');
  mutate('delete');

  policy
    .command('sync')
    .description("compile everything stored and program this node's rules; writes nothing when they already match")
    .option('--netns <path>', 'program this network namespace instead of the current one')
    .action(async function (this: Command, o: { netns?: string }) {
      const r = await withStore(this, (store) => sync(store, o.netns), true);
      if (!json(this)) return void process.stdout.write(syncLine(r));
      process.stdout.write(JSON.stringify({ backend: r.backend, chainsWritten: r.chainsWritten, setsWritten: r.setsWritten, setsDestroyed: r.setsDestroyed }) + '\n');
    });
  examplesFor(policy, {
    validate: ['ternctl policy validate -f policies/', 'ternctl policy validate -f shop.yaml -o json'],
    show: ['ternctl policy show -f shop.yaml --family 4'],
    explain: ['ternctl policy explain --from shop/client-1 --to shop/web-1 --port 443/tcp'],
    apply: ['ternctl policy apply -f shop.yaml --sync'],
    delete: ['ternctl policy delete -f shop.yaml'],
    sync: ['ternctl policy sync --netns /run/netns/node1'],
  });
}
