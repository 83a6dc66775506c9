/**
 * One CNI invocation, `handle()`: reads CNI_* and stdin, dispatches on
 * CNI_COMMAND; every error becomes CNI error JSON at the one boundary,
 * lib/errors-cni.ts. The entry points run it: bin/tern-standalone.ts as a
 * process, the node daemon warm behind its CNI socket.
 * stdout carries only the result or the error; logs go to a file or stderr.
 */
import { EXIT_OK, cniErrorCode, cniErrorOutcome, type Outcome } from '../lib/errors-cni';
import { createLogger, silentLogger, type Logger } from '../lib/log';
import { parseNetConf, parseStdin } from './config';
import { parseEnv, type CniEnv } from './env';
import type { Ctx } from './context';
import { LATEST, SUPPORTED_VERSIONS, requireVersionFor } from './version';
import { withAttachmentLock } from './attach-lock';

export { cniErrorCode, type Outcome } from '../lib/errors-cni';

/** Run one CNI invocation; pure of process-level side effects so the daemon can reuse it. */
export async function handle(envVars: NodeJS.ProcessEnv, stdin: string, logOverride?: Logger, hooks: Pick<Ctx, 'aclProgrammed' | 'aclSync' | 'deleteLink' | 'stores'> = {}): Promise<Outcome> {
  let version = LATEST;
  let log: Logger = logOverride ?? silentLogger();
  let env: CniEnv | undefined;
  try {
    env = parseEnv(envVars);
    if (env.command === 'VERSION') {
      let asked: string = LATEST;
      if (stdin.trim()) {
        const raw = parseStdin(stdin);
        if (typeof raw.cniVersion === 'string') asked = raw.cniVersion;
      }
      return { exitCode: EXIT_OK, stdout: JSON.stringify({ cniVersion: asked, supportedVersions: SUPPORTED_VERSIONS }) };
    }
    const raw = parseStdin(stdin);
    if (typeof raw.cniVersion === 'string') version = raw.cniVersion as typeof LATEST;
    const conf = parseNetConf(raw, { needIpam: env.command === 'ADD' || env.command === 'STATUS' || env.command === 'CHECK' });
    requireVersionFor(env.command, conf.cniVersion);
    if (!logOverride) log = createLogger({ file: conf.logFile, level: conf.logLevel, sync: true, name: 'tern-cni' });
    log = log.child({ command: env.command, containerId: env.containerId || undefined, ifname: env.ifname || undefined });
    const ctx: Ctx = { env, conf, log, ...hooks };
    const t0 = process.hrtime.bigint();
    const out = await (env.command === 'ADD' || env.command === 'DEL' || env.command === 'CHECK' ? withAttachmentLock(env.containerId, env.ifname, () => dispatch(ctx)) : dispatch(ctx));
    log.debug({ ms: Number(process.hrtime.bigint() - t0) / 1e6 }, 'done');
    return { exitCode: EXIT_OK, stdout: out };
  } catch (e) {
    log.error({ err: e, code: cniErrorCode(e) }, 'failed');
    return cniErrorOutcome(e, version);
  }
}

// Each verb's module is loaded when that verb runs: a standalone plugin process
// runs one verb and pays Node's module loading for that verb's graph only.
async function dispatch(ctx: Ctx): Promise<string> {
  let out = '';
  switch (ctx.env.command) {
    case 'ADD':
      out = JSON.stringify(await (await import('./add')).cmdAdd(ctx));
      break;
    case 'DEL':
      await (await import('./del')).cmdDel(ctx);
      break;
    case 'CHECK':
      await (await import('./check')).cmdCheck(ctx);
      break;
    case 'GC':
      await (await import('./gc')).cmdGc(ctx);
      break;
    case 'STATUS':
      await (await import('./status')).cmdStatus(ctx);
      break;
  }
  return out;
}
