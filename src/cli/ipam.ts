/**
 * ternctl ipam: show (utilisation per pool, node and block), check (leaked
 * handles, orphaned blocks, inconsistent affinities), release (free what
 * check found, one handle, or one address) and pool set.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import { Rtnl, parseEndpointAlias } from '../dataplane';
import { RTPROT_POD } from '../lib/constants';
import { storedResources } from '../acl/store';
import type { Store } from '../datastore';
import { writeObjects } from './resources';
import { noObjects } from './manifests';
import { emit, examplesFor, fileError, table, withStore } from './output';
import { BlockIpam, checkIpam, handleId, repairable, type PodRoute, type EndpointAddresses, loadIpamState, normalisePool, parseJson, releaseAddress, repairIpam, utilisation, handleKey, type Finding, type HandleRecord, type IPPool, type Utilisation } from '../ipam';


const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export function formatUtilisation(u: Utilisation): string {
  const pools = [['Pool', 'Mode', 'State', 'Blocks', 'Used', 'Capacity', 'Utilisation']];
  for (const p of u.pools) pools.push([p.pool, p.mode, p.disabled ? 'disabled' : 'enabled', String(p.blocks), String(p.used), String(p.capacity), pct(p.utilisation)]);
  const nodes = [['Node', 'Blocks', 'Used', 'Capacity', 'Borrowed']];
  for (const n of u.nodes) nodes.push([n.node ?? '(none)', String(n.blocks), String(n.used), String(n.capacity), String(n.borrowedIn)]);
  const blocks = [['Block', 'Pool', 'Node', 'Used', 'Capacity', 'Lent']];
  for (const b of u.blocks) blocks.push([b.block, b.pool, b.node ?? '(none)', String(b.used), String(b.capacity), b.borrowed ? `${b.borrowed} (borrowed /32s)` : '0']);
  return `${table(pools)}\n${table(nodes)}\n${table(blocks)}\nFabric routes needed: ${u.fabricRoutes}\n`;
}

export function formatFinding(f: Finding): string {
  switch (f.kind) {
    case 'leaked-handle':
      return `leaked handle ${f.handle}: no live attachment`;
    case 'dangling-handle':
      return `dangling handle ${f.handle}: ${f.address} is not held by it`;
    case 'leaked-address':
      return `leaked address ${f.address} in block ${f.block}: handle ${f.handle} does not exist`;
    case 'orphaned-block':
      return `orphaned block ${f.block}: ${f.reason === 'no-pool' ? 'its pool is gone' : 'no affinity entry'}`;
    case 'orphaned-affinity':
      return `orphaned affinity ${f.key} (node ${f.node}): no block`;
    case 'inconsistent-affinity':
      return `inconsistent affinity for ${f.block}: index says ${f.index}, block says ${f.owner ?? '(none)'}`;
    case 'empty-block':
      return `empty block ${f.block} of ${f.node ?? '(none)'} since ${new Date(f.since).toISOString()}`;
    case 'overlapping-blocks':
      return `block ${f.block} overlaps block ${f.other}`;
    case 'unindexed-block':
      return `block ${f.block} has no claim index entry (written before overlap guards); release --all adds it`;
    case 'orphaned-claim':
      return `claim ${f.key} names block ${f.blockKey}, which is gone`;
    case 'misrouted-address':
      return `address ${f.address} is routed to ${f.dev} (attachment ${f.routedFor}) but IPAM ${f.holder ? `gives it to ${f.holder}` : 'holds it for no one'}`;
    case 'duplicate-endpoint-address':
      return `address ${f.address} is recorded for ${f.endpoints.length} endpoints: ${f.endpoints.join(', ')}`;
  }
}

/** "30s", "10m", "2h", or plain milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new TernError('INVALID_CONFIG', `invalid duration "${s}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'];
}

/** This node's /32 (/128) routes to Tern pod devices, with the attachment each device's ownership mark names. */
async function podRoutes(): Promise<PodRoute[]> {
  const rt = Rtnl.open();
  try {
    const links = new Map((await rt.listLinks()).map((l) => [l.index, l]));
    const out: PodRoute[] = [];
    for (const r of await rt.listRoutes({ table: 254, protocol: RTPROT_POD })) {
      const [address, len] = r.dst.split('/');
      const link = r.dev !== undefined ? links.get(r.dev) : undefined;
      const owner = parseEndpointAlias(link?.alias);
      if (!link || !owner || Number(len) !== (address.includes(':') ? 128 : 32)) continue;
      out.push({ address, dev: link.name, handle: handleId({ network: owner.network, containerId: owner.containerId, ifname: owner.ifname }) });
    }
    return out;
  } finally {
    rt.close();
  }
}

async function endpointAddresses(s: Store): Promise<EndpointAddresses[]> {
  return (await storedResources(s)).flatMap((r) => (r.kind === 'Endpoint' ? [{ key: r.key, ips: r.value.ips }] : []));
}

function readLive(file: string | undefined): Set<string> | undefined {
  if (!file) return undefined;
  try {
    return new Set(fs.readFileSync(file === '-' ? 0 : file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean));
  } catch (e) {
    throw fileError(file, e);
  }
}

const out = (cmd: Command, data: unknown, text: () => string): Promise<void> => emit(cmd, data, text);

export function register(program: Command): void {
  const ipam = program.command('ipam').description('Block IPAM: utilisation, consistency check and repair, pools');

  ipam
    .command('show')
    .description('utilisation per pool, node and block (borrowed addresses included)')
    .action(async (_o, cmd: Command) => {
      await withStore(cmd, async (s) => {
        const u = utilisation(await loadIpamState(s));
        out(cmd, u, () => formatUtilisation(u));
      });
    });

  const checkOpts = (c: Command) =>
    c
      .option('--grace <duration>', 'leaked handles and empty blocks only count after this long', '10m')
      .option('--live <file>', 'file of live handle ids (<network>.<containerID>.<ifname>), one per line; without it handles are not judged by liveness')
      .option('--no-routes', "do not compare this node's pod routes with IPAM");

  checkOpts(ipam.command('check').description('find leaked handles and addresses, orphaned blocks, inconsistent affinities, empty blocks, addresses routed or recorded for the wrong pod')).action(
    async (o: { grace: string; live?: string; routes: boolean }, cmd: Command) => {
      await withStore(cmd, async (s) => {
        const findings = checkIpam(await loadIpamState(s), {
          now: Date.now(),
          graceMs: parseDuration(o.grace),
          live: readLive(o.live),
          routes: o.routes ? await podRoutes() : undefined,
          endpoints: await endpointAddresses(s),
        });
        out(cmd, findings, () => (findings.length ? findings.map(formatFinding).join('\n') + '\n' : 'ok: no problems found\n'));
        if (findings.length) throw new TernError('CHECK_FAILED', `${findings.length} problem(s) found; "ternctl ipam release --all" frees them`);
      });
    },
  );

  checkOpts(
    ipam
      .command('release')
      .description('free what check finds (--all), one handle, or one address')
      .option('--all', 'repair every finding of check')
      .option('--handle <id>', 'release one handle and its addresses')
      .option('--address <ip>', 'free one address, whoever holds it'),
  ).action(async (o: { grace: string; live?: string; all?: boolean; handle?: string; address?: string }, cmd: Command) => {
    if ([o.all, o.handle, o.address].filter(Boolean).length !== 1) throw new TernError('INVALID_CONFIG', 'give exactly one of --all, --handle, --address');
    await withStore(cmd, async (s) => {
      if (o.handle) {
        const kv = await s.get(handleKey(o.handle));
        if (!kv) throw new TernError('NOT_FOUND', `no handle ${o.handle}`);
        const rec = parseJson<HandleRecord>('handle', kv.value);
        await new BlockIpam({ store: s, node: rec.node }).release({ network: rec.network, containerId: rec.containerId, ifname: rec.ifname });
        out(cmd, { released: [o.handle] }, () => `released ${o.handle}: ${rec.ips.map((i) => i.address).join(', ')}\n`);
        return;
      }
      if (o.address) {
        if (!(await releaseAddress(s, o.address, Date.now()))) throw new TernError('NOT_FOUND', `${o.address} is not allocated`);
        out(cmd, { released: [o.address] }, () => `released ${o.address}\n`);
        return;
      }
      const st = await loadIpamState(s);
      const findings = checkIpam(st, { now: Date.now(), graceMs: parseDuration(o.grace), live: readLive(o.live) }).filter(repairable);
      const rep = await repairIpam(s, st, findings, Date.now());
      out(cmd, rep, () => [...rep.repaired.map((f) => `fixed: ${formatFinding(f)}`), ...rep.skipped.map((f) => `skipped (changed meanwhile, re-run check): ${formatFinding(f)}`), `${rep.repaired.length} fixed, ${rep.skipped.length} skipped`].join('\n') + '\n');
    });
  });

  const pool = ipam.command('pool').description('IP pools');
  pool
    .command('set <cidr>')
    .description('create or replace a pool')
    .option('--block-size <len>', 'block prefix length (default 26 for IPv4, 122 for IPv6)')
    .option('--mode <mode>', 'routed, vxlan, vxlan-crosssubnet or vlan', 'routed')
    .option('--disabled', 'no new allocations from this pool')
    .option('--reserve <addr...>', 'addresses or CIDRs never handed out')
    .option('--node-selector <k=v...>', 'labels a node must carry')
    .option('--namespace <ns...>', 'only (and preferably) for these namespaces')
    .option('--tenant <t...>', 'only (and preferably) for these tenants')
    .option('--community <c...>', 'BGP communities for its blocks: 65000:100, or large 65000:1:2')
    .option('--vlan-id <id>', 'mode vlan: the 802.1Q VLAN ID')
    .option('--vlan-parent <ifname>', "mode vlan: the node's trunk interface")
    .option('--vlan-gateway <addr>', "mode vlan: the VLAN's router (pods' default gateway)")
    .option('--vlan-mtu <mtu>', 'mode vlan: MTU of the VLAN devices')
    .action(async (cidr: string, o: { blockSize?: string; mode: string; disabled?: boolean; reserve?: string[]; nodeSelector?: string[]; namespace?: string[]; tenant?: string[]; community?: string[]; vlanId?: string; vlanParent?: string; vlanGateway?: string; vlanMtu?: string }, cmd: Command) => {
      const sel: Record<string, string> = {};
      for (const kv of o.nodeSelector ?? []) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new TernError('INVALID_CONFIG', `node selector "${kv}" is not k=v`);
        sel[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const p = normalisePool({
        cidr,
        blockSize: o.blockSize !== undefined ? Number(o.blockSize) : undefined,
        mode: o.mode as IPPool['mode'],
        disabled: !!o.disabled,
        reserved: o.reserve,
        nodeSelector: sel,
        namespaces: o.namespace,
        tenants: o.tenant,
        communities: o.community,
        vlan: o.vlanId !== undefined || o.vlanParent !== undefined || o.vlanGateway !== undefined ? { id: Number(o.vlanId), parent: o.vlanParent ?? '', gateway: o.vlanGateway ?? '', mtu: o.vlanMtu !== undefined ? Number(o.vlanMtu) : undefined } : undefined,
      });
      await withStore(cmd, async (s) => {
        // The same checked write as `ternctl apply -f` of an IPPool.
        await writeObjects(s, 'apply', { ...noObjects(), pools: [p] });
        out(cmd, p, () => `pool ${p.cidr}: /${p.blockSize} blocks, ${p.mode}${p.disabled ? ', disabled' : ''}\n`);
      }, true);
    });
  examplesFor(ipam, {
    show: ['ternctl ipam show', 'ternctl ipam show -o json'],
    check: ['ternctl ipam check --grace 10m --live live-handles.txt'],
    release: ['ternctl ipam release --all --live live-handles.txt', 'ternctl ipam release --address 10.244.1.7'],
  });
  examplesFor(pool, { set: ['ternctl ipam pool set 10.244.0.0/16 --block-size 26 --node-selector zone=a'] });
}
