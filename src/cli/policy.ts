/**
 * ternctl policy: validate policy files, show the chains and sets they compile
 * to, explain the verdict for one packet, and apply/delete them in the
 * datastore (optionally bringing one namespace's rules in sync at once).
 */
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import {
  Applier,
  compileRuleset,
  explainPacket,
  findEndpoint,
  formatProblem,
  loadPolicyPaths,
  parsePortProto,
  PolicyFileError,
  renderIpsets,
  renderIptables,
  toInput,
  type Resource,
  storedResources,
  syncFromStore,
  type ApplyReport,
  writeResources,
} from '../acl';
import { withDatastore, type Store } from '../datastore';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function load(files: string[] | undefined): Resource[] {
  if (!files?.length) throw new TernError('INVALID_CONFIG', 'give at least one -f FILE|DIR');
  try {
    return loadPolicyPaths(files);
  } catch (e) {
    if (e instanceof PolicyFileError) process.stderr.write(e.problems.map(formatProblem).join('\n') + '\n');
    throw e;
  }
}

const withStore = <T>(cmd: Command, fn: (s: Store) => Promise<T>, create = false): Promise<T> => withDatastore(cmd.optsWithGlobals().datastore, fn, { create });

/** Resources to work on: the given files, or everything in the datastore. */
async function source(cmd: Command, files: string[] | undefined): Promise<Resource[]> {
  if (files?.length) return load(files);
  return withStore(cmd, storedResources);
}

/** Program this node from the datastore (read under the ACL lock, so concurrent appliers lose nothing). */
async function sync(store: Store, netns: string | undefined): Promise<ApplyReport> {
  return (await syncFromStore(store, { netnsPath: netns })).report!;
}

const syncLine = (r: ApplyReport) => `rules in sync (${r.backend}): ${r.chainsWritten} chains and ${r.setsWritten} sets written, ${r.setsDestroyed} sets removed\n`;

export function register(program: Command): void {
  const policy = program.command('policy').description('ACL policies: validate, show, explain, apply, delete, sync');
  const json = (cmd: Command) => cmd.optsWithGlobals().output === 'json';

  policy
    .command('validate')
    .description('check policy files (YAML/JSON, multi-document); any problem rejects them all with file, line and field')
    .requiredOption('-f, --file <path>', 'policy file or directory (repeatable)', collect)
    .action(function (this: Command, o: { file: string[] }) {
      const rs = load(o.file);
      const byKind = new Map<string, number>();
      for (const r of rs) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
      if (json(this)) process.stdout.write(JSON.stringify({ valid: true, resources: Object.fromEntries(byKind) }) + '\n');
      else process.stdout.write(`valid: ${rs.length} resources (${[...byKind].map(([k, n]) => `${n} ${k}`).join(', ')})\n`);
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
      const icmp = pp.protocol === 1 || pp.protocol === 58 ? { type: pp.protocol === 1 ? 8 : 128, code: 0 } : undefined;
      const ex = explainPacket(input, { src: src.ip, dst: dst.ip, protocol: pp.protocol, dstPort: pp.port, icmp });
      if (json(this)) {
        process.stdout.write(JSON.stringify(ex, null, 2) + '\n');
        return;
      }
      for (const s of ex.steps) process.stdout.write(`${s.direction.padEnd(7)} ${s.endpoint}: ${s.tier ? `tier ${s.tier}, ` : ''}${s.policy ? `${s.policy}, ` : ''}${s.detail}\n`);
      process.stdout.write(`verdict: ${ex.verdict.toUpperCase()}\n`);
    });

  const mutate = (name: 'apply' | 'delete') =>
    policy
      .command(name)
      .description(name === 'apply' ? 'store the resources of the files in the datastore, all or none' : 'remove the resources named in the files from the datastore')
      .requiredOption('-f, --file <path>', 'policy file or directory (repeatable)', collect)
      .option('--sync', 'then compile everything stored and program this node (no node daemon)')
      .option('--netns <path>', 'with --sync: program this network namespace instead of the current one')
      .action(async function (this: Command, o: { file: string[]; sync?: boolean; netns?: string }) {
        const rs = load(o.file);
        await withStore(this, async (store) => {
          await writeResources(store, name, rs);
          process.stdout.write(`${name === 'apply' ? 'applied' : 'deleted'} ${rs.length} resources\n`);
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
}
