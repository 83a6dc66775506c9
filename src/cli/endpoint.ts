/**
 * ternctl endpoint: list the endpoints the CNI plugin recorded, and change a
 * pod's labels or named ports without re-attaching it. The change is written
 * to the datastore; `--sync` also brings this node's rules in line at once
 * (the node daemon, or the next CNI ADD/DEL, does it otherwise).
 */
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import { emit, example, table, withStore } from './output';
import { endpointResource, resourceKey, storedResources, syncFromStore, writeResources, type Endpoint } from '../acl';

const PROTO: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };
const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** "app=web" sets, "app-" removes. */
export function applyLabelArgs(labels: Record<string, string>, args: string[]): Record<string, string> {
  const out = { ...labels };
  for (const a of args) {
    const set = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(a);
    const del = /^([A-Za-z0-9][-A-Za-z0-9_./]*)-$/.exec(a);
    if (set) out[set[1]] = set[2];
    else if (del) delete out[del[1]];
    else throw new TernError('INVALID_CONFIG', `label "${a}": use key=value to set or key- to remove`);
  }
  return out;
}

/** "http:tcp:8080" */
export function parsePortArgs(args: string[]): Endpoint['namedPorts'] {
  return args.map((a) => {
    const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?):(tcp|udp|sctp):(\d{1,5})$/i.exec(a);
    const port = m ? Number(m[4]) : 0;
    if (!m || port < 1 || port > 65535) throw new TernError('INVALID_CONFIG', `port "${a}": use name:protocol:port, e.g. http:tcp:8080`);
    return { name: m[1], protocol: PROTO[m[3].toLowerCase()], port };
  });
}

export function endpointRow(e: Endpoint): string[] {
  return [`${e.namespace}/${e.name}`, e.ips.join(','), e.hostIface, Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', e.namedPorts.map((p) => `${p.name}:${PROTO_NAME[p.protocol] ?? p.protocol}:${p.port}`).join(',') || '-'];
}

export function register(program: Command): void {
  const ep = program.command('endpoint').description('endpoints (attached pods) as the ACL engine sees them');
  example(ep.command('list').description('every recorded endpoint: namespace/name, addresses, host interface, labels, named ports'), 'ternctl endpoint list', 'ternctl endpoint list -o yaml').action(
    async (_o, cmd: Command) => {
      const eps = (await withStore(cmd, storedResources)).flatMap((r) => (r.kind === 'Endpoint' ? [r.value] : []));
      emit(cmd, eps, () => table([['ENDPOINT', 'ADDRESSES', 'INTERFACE', 'LABELS', 'PORTS'], ...eps.map(endpointRow)]));
    },
  );

  const change = (name: 'label' | 'ports', describe: string, ex: string, fn: (e: Endpoint, args: string[]) => Endpoint) =>
    example(
      ep
        .command(`${name} <endpoint> <changes...>`)
        .description(describe)
        .option('--sync', "then program this node's rules at once")
        .option('--netns <path>', 'with --sync: program this network namespace instead of the current one'),
      ex,
    )
      .action(async (id: string, args: string[], o: { sync?: boolean; netns?: string }, cmd: Command) => {
        await withStore(cmd, async (store) => {
          const cur = await store.get(resourceKey({ kind: 'Endpoint', key: id }));
          if (!cur) throw new TernError('NOT_FOUND', `no endpoint ${id} (see ternctl endpoint list)`);
          const next = fn((JSON.parse(cur.value) as { value: Endpoint }).value, args);
          await writeResources(store, 'apply', [endpointResource(next)]);
          emit(cmd, next, () => `endpoint ${id} updated\n`);
          if (!o.sync) return;
          const { report: r } = await syncFromStore(store, { netnsPath: o.netns });
          process.stdout.write(`rules in sync (${r!.backend}): ${r!.chainsWritten} chains and ${r!.setsWritten} sets written\n`);
        });
      });
  change('label', 'set (key=value) or remove (key-) labels of a pod', 'ternctl endpoint label prod/web-1 app=web tier- --sync', (e, a) => ({ ...e, labels: applyLabelArgs(e.labels, a) }));
  change('ports', "replace a pod's named ports (name:protocol:port)", 'ternctl endpoint ports prod/web-1 http:tcp:8080 metrics:tcp:9100', (e, a) => ({ ...e, namedPorts: parsePortArgs(a) }));
}
