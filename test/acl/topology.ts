/**
 * ACL test topology: one node namespace with forwarding on and pods attached
 * the way the tern CNI plugin does it (host veth tern<11 hex> with proxy ARP,
 * pod /32 and /128 via the 169.254.1.1 / fe80::ecee:eeff:feee:eeee gateway,
 * host routes scope link). Every pod runs a probe server; probes are real
 * TCP/UDP/ICMP packets. Policies are compiled and applied inside the node
 * namespace only.
 */
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Sandbox, Netns, waitFor } from '../sandbox';
import { Applier, compileRuleset, explainPacket, parsePolicyText, Proto, toInput, type ApplyReport, type Backend, type Endpoint, type NamedPort, type Resource, type Settings } from '../../src/acl';
import { shortHash } from '../../src/acl/compile';
import { ifaceGroup } from '../../src/lib/iface-group';
import { GATEWAY_V4, GATEWAY_V6, HOST_VETH_MAC, LINK_PREFIX } from '../../src/lib/constants';

export const TCP_PORTS = [22, 80, 443, 5432, 8080, 9000];
export const UDP_PORTS = [53, 9000];
const CLIENT = path.join(__dirname, 'fixtures', 'probe-client.cjs');
const SERVER = path.join(__dirname, 'fixtures', 'probe-server.cjs');
const SCTP = path.join(__dirname, 'fixtures', 'sctp-probe.py');

export interface PodSpec {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  v4: string;
  v6?: string;
  namedPorts?: NamedPort[];
  tenant?: string;
}

/**
 * A probe server inside a namespace. Not started through sb.daemon: the shared
 * PID directory lets another engineer's global teardown SIGKILL tracked PIDs of
 * a run still in progress. These die with their namespace in sb.cleanup()
 * (it kills every PID inside a namespace before deleting it) or in stop().
 */
export interface ProbeServer {
  child: ChildProcess;
  output(): string;
}

function startServer(ns: Netns, tcp: number[], udp: number[]): ProbeServer {
  const child = spawn('nsenter', [`--net=${ns.path}`, '--', 'node', SERVER], { env: { ...process.env, TCP: tcp.join(','), UDP: udp.join(',') }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
  return { child, output: () => out };
}

export interface Pod {
  spec: PodSpec;
  ns: Netns;
  ep: Endpoint;
  server: ProbeServer;
}

export type Flow = [from: string, to: string, what: string, allowed: boolean];

export class AclTopology {
  readonly pods = new Map<string, Pod>();
  node!: Netns;
  applier!: Applier;
  /** Extra resources applied with every policy set (e.g. Namespaces). */
  base: Resource[] = [];
  endpointOverrides = new Map<string, Partial<Endpoint>>();
  removed = new Set<string>();
  private nodeServer?: ProbeServer;

  constructor(readonly sb: Sandbox) {}

  static async create(sb: Sandbox, specs: PodSpec[], opts: { backend?: Backend } = {}): Promise<AclTopology> {
    const t = new AclTopology(sb);
    t.node = sb.netns('node');
    for (const k of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']) t.node.must('sysctl', ['-qw', k]);
    // The node's own address, as a real node has on its uplink.
    t.node.ip('addr', 'add', '10.255.255.1/32', 'dev', 'lo');
    t.node.ip('-6', 'addr', 'add', 'fd64:ffff::1/128', 'dev', 'lo', 'nodad');
    // Stands in for the uplink's default route: proxy ARP only answers for 169.254.1.1 when the node has a route to it.
    t.node.ip('route', 'add', 'default', 'dev', 'lo');
    for (const s of specs) t.addPod(s);
    t.nodeServer = startServer(t.node, [22, 8080], []);
    await waitFor(() => t.nodeServer!.output().includes('ready'), { what: 'node probe server', timeoutMs: 60_000 }).catch((e) => {
      throw new Error(`${e.message}: exit ${t.nodeServer!.child.exitCode} output ${t.nodeServer!.output()}`);
    });
    for (const p of t.pods.values()) await waitFor(() => p.server.output().includes('ready'), { what: `probe server in ${p.spec.name}`, timeoutMs: 60_000 });
    t.applier = new Applier({ netnsPath: t.node.path, backend: opts.backend, lockFile: path.join('/tmp', `${sb.prefix}-acl.lock`) });
    return t;
  }

  private addPod(s: PodSpec): void {
    const ns = this.sb.netns(`p${s.name}`.slice(0, 20));
    for (const k of ['net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']) ns.must('sysctl', ['-qw', k]);
    const host = `${LINK_PREFIX}${shortHash(`${this.sb.prefix}/${s.name}`, 11)}`;
    this.node.ip('link', 'add', host, 'address', HOST_VETH_MAC, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
    this.node.ip('link', 'set', host, 'group', String(ifaceGroup(host))); // as the CNI plugin sets it
    this.node.must('sysctl', ['-qw', `net.ipv4.conf.${host}.proxy_arp=1`, `net.ipv4.neigh.${host}.proxy_delay=0`]);
    this.node.ip('link', 'set', host, 'up');
    ns.ip('link', 'set', 'eth0', 'up');
    ns.ip('addr', 'add', `${s.v4}/32`, 'dev', 'eth0');
    ns.ip('route', 'add', GATEWAY_V4, 'dev', 'eth0', 'scope', 'link');
    ns.ip('route', 'add', 'default', 'via', GATEWAY_V4, 'dev', 'eth0');
    this.node.ip('route', 'add', `${s.v4}/32`, 'dev', host, 'scope', 'link');
    if (s.v6) {
      ns.ip('-6', 'addr', 'add', `${s.v6}/128`, 'dev', 'eth0', 'nodad');
      ns.ip('-6', 'route', 'add', 'default', 'via', GATEWAY_V6, 'dev', 'eth0');
      this.node.ip('-6', 'route', 'add', `${s.v6}/128`, 'dev', host);
    }
    const server = startServer(ns, TCP_PORTS, UDP_PORTS);
    const ep: Endpoint = { name: s.name, namespace: s.namespace, labels: s.labels ?? {}, ips: s.v6 ? [s.v4, s.v6] : [s.v4], hostIface: host, namedPorts: s.namedPorts ?? [] };
    if (s.tenant) ep.tenant = s.tenant;
    this.pods.set(s.name, { spec: s, ns, ep, server });
  }

  /** Stop the probe servers (by PID); call before sb.cleanup(). */
  stop(): void {
    for (const s of [this.nodeServer, ...[...this.pods.values()].map((p) => p.server)]) if (s && s.child.exitCode === null) s.child.kill('SIGKILL');
  }

  /** Stop the probe servers and remove Tern's rules from the node; call before sb.cleanup(). */
  async dispose(): Promise<void> {
    this.stop();
    await this.applier.remove();
  }

  pod(name: string): Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  endpoints(): Endpoint[] {
    return [...this.pods.values()].filter((p) => !this.removed.has(p.spec.name)).map((p) => ({ ...p.ep, ...(this.endpointOverrides.get(p.spec.name) ?? {}) }));
  }

  resources(yaml: string): Resource[] {
    const eps: Resource[] = this.endpoints().map((e) => ({ kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e }));
    return [...this.base, ...eps, ...(yaml.trim() ? parsePolicyText(yaml, 'test.yaml') : [])];
  }

  /** Compile the policy text with the current endpoints and apply it in the node namespace. */
  apply(yaml: string): Promise<ApplyReport> {
    const input = toInput(this.resources(yaml));
    this.lastInput = input;
    return this.applier.apply(compileRuleset(input));
  }
  lastInput = toInput([]);

  addr(name: string, v6 = false): string {
    if (name === 'node') return v6 ? 'fd64:ffff::1' : '10.255.255.1';
    const p = this.pod(name);
    return v6 ? p.spec.v6! : p.spec.v4;
  }

  /** One real probe: "tcp/80", "udp/53", "icmp"; "6:" prefix for IPv6. */
  async probe(from: string, to: string, what: string): Promise<boolean> {
    const v6 = what.startsWith('6:');
    const w = v6 ? what.slice(2) : what;
    const src = from === 'node' ? this.node : this.pod(from).ns;
    const dst = this.addr(to, v6);
    if (w === 'icmp') {
      const r = await src.execAsync('ping', [...(v6 ? ['-6'] : []), '-n', '-q', '-c', '1', '-W', '1', dst], { timeoutMs: 10_000 });
      return r.code === 0;
    }
    const [proto, port] = w.split('/');
    if (proto === 'sctp') return this.sctpProbe(src, this.pod(to).ns, dst, Number(port));
    const r = await src.execAsync('node', [CLIENT, proto, dst, port, '2500'], { timeoutMs: 15_000 });
    return r.code === 0;
  }

  /** SCTP INIT from a raw socket, seen (or not) by a raw socket in the destination pod. */
  private async sctpProbe(src: Netns, dstNs: Netns, dst: string, port: number): Promise<boolean> {
    const sport = 20_000 + Math.floor(Math.random() * 40_000);
    const recv = spawn('nsenter', [`--net=${dstNs.path}`, '--', 'python3', SCTP, 'recv', String(sport), String(port), '1.5'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<number>((resolve) => recv.on('exit', (code) => resolve(code ?? 1)));
    recv.stdin!.on('error', () => {}); // it may have exited already, seeing the packet
    await new Promise<void>((resolve) => recv.stdout!.once('data', () => resolve()));
    await src.execAsync('python3', [SCTP, 'send', dst, String(sport), String(port)], { timeoutMs: 10_000 });
    // The receiver's deadline starts now that the sender is done (see sctp-probe.py).
    recv.stdin!.end('sent\n');
    return (await exited) === 0;
  }

  /** The verdict explain gives for the same packet. */
  explain(from: string, to: string, what: string): boolean {
    const v6 = what.startsWith('6:');
    const w = v6 ? what.slice(2) : what;
    const [proto, port] = w.split('/');
    const protocol = proto === 'icmp' ? (v6 ? Proto.ICMPV6 : Proto.ICMP) : proto === 'udp' ? Proto.UDP : proto === 'sctp' ? Proto.SCTP : Proto.TCP;
    const pkt = { src: this.addr(from, v6), dst: this.addr(to, v6), protocol, dstPort: port ? Number(port) : undefined, icmp: proto === 'icmp' ? { type: v6 ? 128 : 8, code: 0 } : undefined, toNode: to === 'node' };
    if (from === 'node') return true; // node-local traffic takes OUTPUT, which Tern never filters
    return explainPacket(this.lastInput, pkt).verdict === 'allow';
  }

  /** Probe every flow in parallel; returns the flows whose kernel or explain verdict differ from expected. */
  async check(flows: Flow[]): Promise<string[]> {
    // A flow expected to pass gets three tries: on a loaded machine one probe can time out.
    // Retrying never turns a real deny into a pass.
    const got = await Promise.all(
      flows.map(async (f) => {
        for (let i = 0; i < (f[3] ? 3 : 1); i++) if (await this.probe(f[0], f[1], f[2])) return true;
        return false;
      }),
    );
    const bad: string[] = [];
    flows.forEach(([from, to, what, want], i) => {
      if (got[i] !== want) bad.push(`${from} -> ${to} ${what}: kernel ${got[i] ? 'allowed' : 'denied'}, expected ${want ? 'allowed' : 'denied'}`);
      const ex = this.explain(from, to, what);
      if (ex !== want) bad.push(`${from} -> ${to} ${what}: explain ${ex ? 'allows' : 'denies'}, expected ${want ? 'allowed' : 'denied'}`);
    });
    return bad;
  }
}

export function settingsDoc(s: Partial<Settings>): string {
  return `apiVersion: tern.io/v1\nkind: ClusterSettings\nmetadata: {name: default}\nspec: ${JSON.stringify(s)}\n---\n`;
}
