/**
 * Three node namespaces in two underlay subnets joined by a router:
 *   n1 10.10.1.2, n2 10.10.1.3 on one L2 segment (bridge in the router ns, 10.10.1.1)
 *   n3 10.10.2.2 on a second segment (router side 10.10.2.1)
 * Each node has one routed-mode pod (host veth tern<11 hex>, ee:ee:ee:ee:ee:ee,
 * proxy_arp, pod /32 with default via 169.254.1.1). The router knows no pod
 * routes, so pod traffic between nodes only flows through the overlay.
 */
import { HOST_VETH_MAC, GATEWAY_V4 } from '../../src/lib/constants';
import type { RemoteNode, SelfNode } from '../../src/overlay';
import { vtepMacFor } from '../../src/overlay';
import { spawn } from 'node:child_process';
import { Netns, Sandbox, waitInNetns } from '../sandbox';

export interface TopoNode {
  ns: Netns;
  name: string;
  underlayIp: string;
  subnet: string;
  uplink: string;
  tunnelIp: string;
  block: string;
  pod: Netns;
  podIp: string;
  hostVeth: string;
}

export interface Topology {
  router: Netns;
  nodes: TopoNode[];
}

const SPECS = [
  { name: 'n1', underlayIp: '10.10.1.2', subnet: '10.10.1.0/24', gw: '10.10.1.1', block: '10.244.1.0/26', seg: 'a' },
  { name: 'n2', underlayIp: '10.10.1.3', subnet: '10.10.1.0/24', gw: '10.10.1.1', block: '10.244.2.0/26', seg: 'a' },
  { name: 'n3', underlayIp: '10.10.2.2', subnet: '10.10.2.0/24', gw: '10.10.2.1', block: '10.244.3.0/26', seg: 'b' },
];

export function hostVethName(i: number): string {
  return `tern${(0xabc0000000 + i).toString(16).padStart(11, '0')}`;
}

/** A pod in the routed shape the CNI plugin builds. */
export function addRoutedPod(sb: Sandbox, node: Netns, podName: string, podIp: string, hostVeth: string): Netns {
  const pod = sb.netns(podName);
  node.ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name);
  node.ip('link', 'set', hostVeth, 'address', HOST_VETH_MAC);
  node.sysctl(`net.ipv4.conf.${hostVeth}.proxy_arp`, '1');
  node.ip('link', 'set', hostVeth, 'up');
  node.ip('route', 'add', `${podIp}/32`, 'dev', hostVeth, 'scope', 'link');
  pod.ip('addr', 'add', `${podIp}/32`, 'dev', 'eth0');
  pod.ip('link', 'set', 'eth0', 'up');
  pod.ip('route', 'add', `${GATEWAY_V4}/32`, 'dev', 'eth0', 'scope', 'link');
  pod.ip('route', 'add', 'default', 'via', GATEWAY_V4, 'dev', 'eth0');
  return pod;
}

export function buildTopology(sb: Sandbox): Topology {
  const router = sb.netns('r');
  router.sysctl('net.ipv4.ip_forward', '1');
  router.ip('link', 'add', 'br-a', 'type', 'bridge');
  router.ip('addr', 'add', '10.10.1.1/24', 'dev', 'br-a');
  router.ip('link', 'set', 'br-a', 'up');
  const nodes: TopoNode[] = SPECS.map((s, i) => {
    const ns = sb.netns(s.name);
    ns.sysctl('net.ipv4.ip_forward', '1');
    for (const k of ['all', 'default']) ns.sysctl(`net.ipv4.conf.${k}.rp_filter`, '0');
    if (s.seg === 'a') {
      sb.link(ns, 'eth0', router, `p-${s.name}`, { aAddr: `${s.underlayIp}/24` });
      router.ip('link', 'set', `p-${s.name}`, 'master', 'br-a');
    } else {
      sb.link(ns, 'eth0', router, `p-${s.name}`, { aAddr: `${s.underlayIp}/24`, bAddr: `${s.gw}/24` });
    }
    ns.ip('route', 'add', 'default', 'via', s.gw);
    const blockBase = s.block.split('/')[0].split('.').slice(0, 3).join('.');
    const podIp = `${blockBase}.2`;
    const hostVeth = hostVethName(i + 1);
    const pod = addRoutedPod(sb, ns, `p${i + 1}`, podIp, hostVeth);
    return { ns, name: s.name, underlayIp: s.underlayIp, subnet: s.subnet, uplink: 'eth0', tunnelIp: `${blockBase}.1`, block: s.block, pod, podIp, hostVeth };
  });
  return { router, nodes };
}

export function selfOf(n: TopoNode): SelfNode {
  return { name: n.name, underlayIp: n.underlayIp, tunnelIp: n.tunnelIp };
}

export function remoteOf(n: TopoNode): RemoteNode {
  return { name: n.name, underlayIp: n.underlayIp, vtepMac: vtepMacFor(n.name), tunnelIp: n.tunnelIp, blocks: [n.block], subnet: n.subnet };
}

const ECHO_SERVER = "require('net').createServer((s) => s.pipe(s)).listen(Number(process.argv[1]), () => console.log('listening'))";
const ECHO_CLIENT = `
const [host, port] = process.argv.slice(1);
const msg = 'tern-' + host + '-' + Date.now();
const s = require('net').connect({ host, port: Number(port) }, () => s.end(msg));
let got = '';
s.on('data', (d) => (got += d));
s.on('close', () => { console.log(got === msg ? 'echo-ok' : 'echo-bad:' + got); });
s.on('error', (e) => { console.log('error:' + e.message); });
setTimeout(() => { console.log('timeout'); process.exit(1); }, 8000).unref();
`;

export interface NsProcess {
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * A process inside a namespace, deliberately not in the sandbox's shared PID
 * directory: any run's global teardown SIGKILLs every PID listed there, which
 * kills other files' servers mid-test. Backstop: Sandbox.cleanup kills what
 * still runs inside its namespaces before deleting them.
 */
export function spawnIn(ns: Netns, cmd: string, args: string[]): NsProcess {
  const child = spawn('nsenter', [`--net=${ns.path}`, '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) waitInNetns(child.pid, ns.path);
  let out = '';
  child.stdout.on('data', (d) => (out = (out + d).slice(-200_000)));
  child.stderr.on('data', (d) => (out = (out + d).slice(-200_000)));
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  return {
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** TCP echo server in a pod; resolves once it listens. */
export async function startEcho(pod: Netns, port: number): Promise<NsProcess> {
  const d = spawnIn(pod, process.execPath, ['-e', ECHO_SERVER, String(port)]);
  const deadline = Date.now() + 15_000;
  while (!d.output().includes('listening')) {
    if (Date.now() > deadline) throw new Error(`echo server in ${pod.name} did not start: ${d.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return d;
}

/** One TCP round trip from a pod; true when the echo matched. */
export async function tcpEcho(from: Netns, host: string, port: number): Promise<boolean> {
  const r = await from.execAsync(process.execPath, ['-e', ECHO_CLIENT, host, String(port)], { timeoutMs: 15_000 });
  if (!r.stdout.includes('echo-ok') && process.env.TERN_DEBUG) console.error(`tcpEcho ${from.name} -> ${host}: ${r.stdout} ${r.stderr}`);
  return r.stdout.includes('echo-ok');
}

/** Count packets matching `filter` on `iface` in `ns` while `action` runs. */
export async function capture(ns: Netns, iface: string, filter: string, action: () => unknown): Promise<string[]> {
  // --immediate-mode: hand each packet over at once, so none sit in a buffer when we stop.
  const d = spawnIn(ns, 'tcpdump', ['--immediate-mode', '-l', '-nn', '-e', '-i', iface, filter]);
  const deadline = Date.now() + 15_000;
  while (!d.output().includes('listening on')) {
    if (Date.now() > deadline) throw new Error(`tcpdump did not start: ${d.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await action();
  // Give the last packets time to be printed, then stop it (SIGINT flushes stdout).
  await new Promise((r) => setTimeout(r, 1000));
  await d.stop('SIGINT');
  return d
    .output()
    .split('\n')
    .filter((l) => /^\d\d:\d\d:\d\d\.\d+ /.test(l));
}
