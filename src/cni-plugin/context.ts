/** What every verb gets: the validated env and config, a logger, and the requested IPs. */
import type { Logger } from '../lib/log';
import type { NetConf } from './config';
import type { CniEnv } from './env';
import type { AllocationKey } from '../ipam/types';
import type { StorePool } from '../datastore/store-pool';

export interface Ctx {
  env: CniEnv;
  conf: NetConf;
  log: Logger;
  /** Set by the node daemon: whether this node's ACL rules exist (saves asking the kernel). */
  aclProgrammed?: () => boolean;
  /** Set by the node daemon: bring the rules in sync through its ACL loop (incremental for a pod joining or leaving); throws if that failed. */
  aclSync?: () => Promise<void>;
  /** Set by the node daemon: delete a host veth off its event loop (LinkDeleter); false if it was gone. */
  deleteLink?: (name: string) => Promise<boolean>;
  /** Set by the node daemon: datastore handles kept open across requests. */
  stores?: StorePool;
}

export function allocationKey(ctx: Ctx): AllocationKey {
  return { network: ctx.conf.name, containerId: ctx.env.containerId, ifname: ctx.env.ifname };
}

/** Specific addresses asked for: CNI_ARGS IP=a[,b], the `ips` capability, or args.cni.ips. */
export function requestedIps(ctx: Ctx): string[] {
  const fromArgs = (ctx.env.args.get('IP') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return [...new Set([...fromArgs, ...ctx.conf.runtimeIps, ...ctx.conf.argsIps])];
}
