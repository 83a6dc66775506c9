/**
 * The node daemon (composition root). Today it serves the warm CNI fast path
 * and health/metrics; the BGP, route, overlay and ACL reconcilers attach here.
 */
import * as http from 'node:http';
import type { Logger } from '../lib/log';
import { handle } from '../cni-plugin/main';
import { CniServer } from './cni-server';
import type { DaemonConfig } from './config';
import { Metrics } from './metrics';

export class NodeDaemon {
  readonly metrics = new Metrics();
  private cni?: CniServer;
  private http?: http.Server;
  private ready = false;

  constructor(private readonly config: DaemonConfig, private readonly log: Logger) {}

  async start(): Promise<void> {
    const cniLog = this.log.child({ component: 'cni' });
    this.cni = new CniServer({
      socketPath: this.config.cniSocket,
      log: cniLog,
      handle: (env, stdin) => handle(env, stdin, cniLog),
      observe: (command, ms, ok) => {
        this.metrics.observe('tern_cni_request_duration_seconds', 'CNI request latency', { command }, ms / 1000);
        this.metrics.inc('tern_cni_requests_total', 'CNI requests', { command, result: ok ? 'ok' : 'error' });
      },
    });
    await this.cni.start();
    if (this.config.healthListen) await this.startHttp(this.config.healthListen);
    this.ready = true;
    this.log.info({ node: this.config.nodename }, 'node daemon started');
  }

  private async startHttp(listen: string): Promise<void> {
    const i = listen.lastIndexOf(':');
    const host = listen.slice(0, i);
    const port = Number(listen.slice(i + 1));
    const server = http.createServer((req, res) => {
      const send = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
        res.writeHead(code, { 'content-type': type });
        res.end(body);
      };
      if (req.url === '/healthz') return send(200, 'ok\n');
      if (req.url === '/readyz') return this.ready ? send(200, 'ready\n') : send(503, 'not ready\n');
      if (req.url === '/metrics') return send(200, this.metrics.render(), 'text/plain; version=0.0.4');
      send(404, 'not found\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.http = server;
  }

  async stop(): Promise<void> {
    this.ready = false;
    await this.cni?.stop();
    if (this.http) await new Promise<void>((r) => this.http!.close(() => r()));
    this.log.info('node daemon stopped');
  }
}
