/** DEL: idempotent. Missing netns, interface or prevResult, or a repeat, are all success. */
import { hostVethName, removeEndpoint } from '../dataplane';
import { openIpam } from './ipam';
import { allocationKey, type Ctx } from './context';

export async function cmdDel(ctx: Ctx): Promise<void> {
  const { env, conf, log } = ctx;
  const host = hostVethName(env.containerId, env.ifname);
  const removed = await removeEndpoint(host);
  const ipam = openIpam(conf);
  try {
    await ipam.release(allocationKey(ctx));
  } finally {
    await ipam.close();
  }
  log.info({ host, removed }, 'detached');
}
