/**
 * Real etcd (Debian's etcd-server 3.4) for tests: one member or a 3-member
 * cluster on loopback with free ports, optionally TLS-only with client
 * certificate auth (a throwaway CA made with openssl). Members run as
 * sandbox daemons, so they are stopped by PID and the global teardown
 * catches leaks; data dirs live in sandbox temp dirs.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { type Daemon, type Netns, type Sandbox, must, waitFor } from './index';
import { EtcdStore, type EtcdStoreOptions } from '../../src/datastore';

export const ETCD_BIN = '/usr/bin/etcd';

export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

/** A free TCP port on 127.0.0.1 (the kernel picks; the tiny reuse window is acceptable for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A throwaway CA, a server cert for 127.0.0.1/localhost and a client cert. */
export function makeTlsFiles(dir: string): EtcdTls & { serverCert: string; serverKey: string } {
  const f = (n: string) => path.join(dir, n);
  const ossl = (...args: string[]) => must('openssl', args);
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tern-test-ca', '-keyout', f('ca.key'), '-out', f('ca.crt'));
  fs.writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  fs.writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', 'etcd'],
    ['client', 'tern'],
  ]) {
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    ossl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  }
  return { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key'), serverCert: f('server.crt'), serverKey: f('server.key') };
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  daemon?: Daemon;
}

export class EtcdCluster {
  constructor(
    private readonly sb: Sandbox,
    readonly members: EtcdMember[],
    private readonly args: (m: EtcdMember) => string[],
    readonly tls?: EtcdTls,
    private readonly netns?: Netns,
  ) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** Options for an EtcdStore talking to this cluster (with the client cert when TLS). */
  storeOptions(extra: Partial<EtcdStoreOptions> = {}): EtcdStoreOptions {
    return { endpoints: this.endpoints, ...(this.tls ?? {}), ...extra };
  }

  startMember(i: number): void {
    const m = this.members[i];
    if (m.daemon && m.daemon.child.exitCode === null && m.daemon.child.signalCode === null) return;
    m.daemon = this.sb.daemon(ETCD_BIN, this.args(m), this.netns ? { netns: this.netns } : {});
  }

  async stopMember(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.members[i].daemon?.stop(signal, 5000);
    this.members[i].daemon = undefined;
  }

  /** Waits until a write through every listed member's endpoint succeeds. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    if (this.netns) {
      // Unreachable from the test process: ask from inside the namespace.
      const ns = this.netns;
      for (const m of this.members.filter((x) => x.daemon)) {
        await waitFor(() => ns.exec('etcdctl', ['--endpoints', m.clientUrl, '--command-timeout=2s', 'put', '/tern-test/health', m.name]).code === 0 || undefined, { timeoutMs, intervalMs: 250, what: `etcd ${m.name} healthy: ${m.daemon?.output().slice(-2000)}` });
      }
      return;
    }
    for (const m of this.members.filter((x) => x.daemon)) {
      const store = new EtcdStore({ ...this.storeOptions(), endpoints: [m.clientUrl], timeoutMs: 2000 });
      try {
        await waitFor(
          async () => {
            await store.txn([{ op: 'put', key: '/tern-test/health', value: m.name }]);
            return true;
          },
          { timeoutMs, intervalMs: 250, what: `etcd ${m.name} healthy: ${m.daemon?.output().slice(-2000)}` },
        );
      } finally {
        await store.close();
      }
    }
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.stopMember(i, 'SIGTERM');
  }
}

export interface StartEtcdOptions {
  members?: number;
  /** TLS-only: https client and peer URLs, client certificates required. */
  tls?: boolean;
  /** Run the members inside this namespace, member i on hosts[i] (ports 2379/2380), reachable from node namespaces. */
  netns?: Netns;
  hosts?: string[];
}

export async function startEtcd(sb: Sandbox, opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const n = opts.members ?? 1;
  const dir = sb.tmpdir();
  const tls = opts.tls ? makeTlsFiles(dir) : undefined;
  const scheme = tls ? 'https' : 'http';
  const members: EtcdMember[] = [];
  for (let i = 0; i < n; i++) {
    const host = opts.hosts?.[i];
    const [cp, pp] = host ? [2379, 2380] : [await freePort(), await freePort()];
    members.push({
      name: `m${i}`,
      clientUrl: `${scheme}://${host ?? '127.0.0.1'}:${cp}`,
      peerUrl: `${scheme}://${host ?? '127.0.0.1'}:${pp}`,
      dataDir: path.join(dir, `m${i}.etcd`),
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `${sb.prefix}-${path.basename(dir)}`;
  const args = (m: EtcdMember): string[] => [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl,
    '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl,
    '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', token,
    // etcd's default timing: shorter elections flap on a loaded 2-core machine.
    '--heartbeat-interval', '100',
    '--election-timeout', '1000',
    '--log-level', 'warn',
    ...(tls
      ? [
          '--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth',
          '--peer-cert-file', tls.serverCert, '--peer-key-file', tls.serverKey, '--peer-trusted-ca-file', tls.ca, '--peer-client-cert-auth',
        ]
      : []),
  ];
  const cluster = new EtcdCluster(sb, members, args, tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : undefined, opts.netns);
  for (let i = 0; i < n; i++) cluster.startMember(i);
  await cluster.waitHealthy();
  return cluster;
}
