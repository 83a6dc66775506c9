/** DEL: idempotent. Missing netns, interface or prevResult, or a repeat, are all success. */
import { hostVethName, removeEndpoint } from '../dataplane';
import { openDatastore, openIpam } from './ipam';
import { forgetEndpoints } from './acl';
import { allocationKey, type Ctx } from './context';

export async function cmdDel(ctx: Ctx): Promise<void> {
  const { env, conf, log } = ctx;
  const host = hostVethName(env.containerId, env.ifname);
  const removed = await removeEndpoint(host);
  const store = openDatastore(conf);
  const ipam = openIpam(conf, log, store);
  try {
    await ipam.release(allocationKey(ctx));
    await forgetEndpoints(store, ctx, [host]);
  } finally {
    await ipam.close();
    await store.close();
  }
  log.info({ host, removed }, 'detached');
}
