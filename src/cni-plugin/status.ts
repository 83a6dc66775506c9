/** STATUS (CNI 1.1): success when the plugin could allocate now; code 50 otherwise. */
import { TernError, messageOf } from '../lib/errors';
import { openIpam } from './ipam';
import type { Ctx } from './context';

export async function cmdStatus(ctx: Ctx): Promise<void> {
  try {
    const ipam = openIpam(ctx.conf);
    try {
      await ipam.status(ctx.conf.ipam.pools);
    } finally {
      await ipam.close();
    }
  } catch (e) {
    if (e instanceof TernError && e.code === 'INVALID_CONFIG') throw e;
    throw new TernError('NOT_READY', `plugin cannot allocate: ${messageOf(e)}`, { cause: e });
  }
}
