/**
 * tern-ipam: Tern's block IPAM as a standalone CNI IPAM plugin, so other
 * plugins (Debian's ptp, bridge) can use it:
 *   "ipam": { "type": "tern-ipam", "pools": ["10.70.0.0/16"],
 *             "datastore": {...}, "nodename": "...", "routes": [...] }
 * `datastore` and `nodename` may also sit at the top level of the config.
 * The result's gateway is Tern's link-local gateway, which the calling plugin
 * puts on its host-side interface (ptp does).
 */
import { TernError } from '../lib/errors';
import { EXIT_OK, cniErrorCode, cniErrorOutcome, runCniProcess, type Outcome } from '../lib/errors-cni';
import { GATEWAY_V4, GATEWAY_V6 } from '../lib/constants';
import { createLogger, silentLogger, type Logger } from '../lib/log';
import { parseNetConf, parseStdin } from '../cni-plugin/config';
import { parseEnv } from '../cni-plugin/env';
import { LATEST, SUPPORTED_VERSIONS, atLeast, requireVersionFor } from '../cni-plugin/version';
import { parseDatastoreField } from '../datastore/config';
import { openStore } from '../datastore/open';
import { BlockIpam } from '../ipam/block-ipam';
import { resolveNodeName } from '../ipam/nodename';
import { gcNetwork } from '../ipam/gc';
import type { AllocatedIp } from '../ipam/types';

function ipamResult(version: string, ips: AllocatedIp[], routes: unknown, dns: unknown): Record<string, unknown> {
  const pre1 = !atLeast(version, '1.0.0');
  return {
    cniVersion: version,
    ips: ips.map((ip) => ({
      ...(pre1 ? { version: String(ip.family) } : {}),
      // The pool's prefix length, not /32: plugins like ptp replace the on-link prefix route with one via the gateway.
      address: `${ip.address}/${ip.pool.split('/')[1]}`,
      gateway: ip.family === 4 ? GATEWAY_V4 : GATEWAY_V6,
    })),
    routes: Array.isArray(routes) ? routes : [],
    dns: typeof dns === 'object' && dns !== null ? dns : {},
  };
}

export async function handleIpam(envVars: NodeJS.ProcessEnv, stdin: string): Promise<Outcome> {
  let version: string = LATEST;
  let log: Logger = silentLogger();
  try {
    const env = parseEnv(envVars);
    if (env.command === 'VERSION') {
      return { exitCode: EXIT_OK, stdout: JSON.stringify({ cniVersion: LATEST, supportedVersions: SUPPORTED_VERSIONS }) };
    }
    const raw = parseStdin(stdin);
    if (typeof raw.cniVersion === 'string') version = raw.cniVersion;
    const conf = parseNetConf(raw, { needIpam: env.command === 'ADD' || env.command === 'STATUS' });
    requireVersionFor(env.command, conf.cniVersion);
    if (conf.ipam.type !== 'tern-ipam') throw new TernError('INVALID_CONFIG', `invalid field "ipam.type": expected "tern-ipam", got "${conf.ipam.type}"`);
    const io = conf.ipam.raw;
    const datastore = io.datastore !== undefined ? parseDatastoreField(io.datastore, 'ipam.datastore') : conf.datastore;
    const nodename = typeof io.nodename === 'string' ? io.nodename : conf.nodename;
    log = createLogger({ file: conf.logFile, level: conf.logLevel, sync: true, name: 'tern-ipam' }).child({ command: env.command, containerId: env.containerId || undefined });
    const store = openStore(datastore);
    const ipam = new BlockIpam({ store, node: resolveNodeName({ nodename }), log, ownsStore: true });
    const key = { network: conf.name, containerId: env.containerId, ifname: env.ifname };
    try {
      switch (env.command) {
        case 'ADD': {
          const argIp = env.args.get('IP');
          const requested = [...conf.runtimeIps, ...conf.argsIps, ...(argIp ? argIp.split(',').map((s) => s.trim()) : [])];
          const ips = await ipam.allocate({ key, pools: conf.ipam.pools, requested: requested.length ? [...new Set(requested)] : undefined, attrs: { node: ipam.node } });
          return { exitCode: EXIT_OK, stdout: JSON.stringify(ipamResult(conf.cniVersion, ips, io.routes, conf.dns)) };
        }
        case 'DEL':
          await ipam.release(key);
          return { exitCode: EXIT_OK, stdout: '' };
        case 'CHECK':
          if (!(await ipam.get(key))) throw new TernError('CHECK_FAILED', `no allocation for ${conf.name}.${env.containerId}.${env.ifname}`);
          return { exitCode: EXIT_OK, stdout: '' };
        case 'GC':
          await gcNetwork(store, conf.name, (conf.validAttachments ?? []).map((a) => ({ network: conf.name, containerId: a.containerID, ifname: a.ifname })), Date.now());
          return { exitCode: EXIT_OK, stdout: '' };
        case 'STATUS':
          await ipam.status(conf.ipam.pools);
          return { exitCode: EXIT_OK, stdout: '' };
      }
    } finally {
      await ipam.close();
    }
    return { exitCode: EXIT_OK, stdout: '' };
  } catch (e) {
    log.error({ err: e, code: cniErrorCode(e) }, 'failed');
    return cniErrorOutcome(e, version);
  }
}

/** Entry for dist/bin/tern-ipam. */
export function run(): void {
  runCniProcess(handleIpam);
}
