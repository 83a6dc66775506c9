/**
 * The `tern` CNI plugin entry: reads CNI_* and stdin, dispatches on
 * CNI_COMMAND, and maps every error to CNI error JSON once, here.
 * stdout carries only the result or the error; logs go to a file or stderr.
 */
import * as fs from 'node:fs';
import { TernError, messageOf, type ErrorCode } from '../lib/errors';
import { createLogger, silentLogger, type Logger } from '../lib/log';
import { parseNetConf, parseStdin } from './config';
import { parseEnv, type CniEnv } from './env';
import type { Ctx } from './context';
import { LATEST, SUPPORTED_VERSIONS, requireVersionFor } from './version';
import { cmdAdd } from './add';
import { cmdDel } from './del';
import { cmdCheck } from './check';
import { cmdGc } from './gc';
import { cmdStatus } from './status';
import { withAttachmentLock } from './attach-lock';

/** CNI spec error codes; 100+ are Tern's own. */
const CNI_CODES: Partial<Record<ErrorCode, number>> = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_READY: 50,
  IPAM_EXHAUSTED: 101,
  ALREADY_EXISTS: 102,
  CONFLICT: 103,
  CHECK_FAILED: 104,
  UNSUPPORTED_KERNEL: 105,
};

export function cniErrorCode(e: unknown): number {
  return e instanceof TernError ? (CNI_CODES[e.code] ?? 999) : 999;
}

export interface Outcome {
  exitCode: number;
  stdout: string;
}

function errorJson(version: string, e: unknown): string {
  const details = e instanceof TernError && e.cause ? messageOf(e.cause) : undefined;
  return JSON.stringify({ cniVersion: version, code: cniErrorCode(e), msg: messageOf(e), ...(details ? { details } : {}) });
}

/** Run one CNI invocation; pure of process-level side effects so the daemon can reuse it. */
export async function handle(envVars: NodeJS.ProcessEnv, stdin: string, logOverride?: Logger, hooks: Pick<Ctx, 'aclProgrammed'> = {}): Promise<Outcome> {
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
      return { exitCode: 0, stdout: JSON.stringify({ cniVersion: asked, supportedVersions: SUPPORTED_VERSIONS }) };
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
    return { exitCode: 0, stdout: out };
  } catch (e) {
    log.error({ err: e, code: cniErrorCode(e) }, 'failed');
    return { exitCode: 1, stdout: errorJson(version, e) };
  }
}

async function dispatch(ctx: Ctx): Promise<string> {
  let out = '';
  switch (ctx.env.command) {
    case 'ADD':
      out = JSON.stringify(await cmdAdd(ctx));
      break;
    case 'DEL':
      await cmdDel(ctx);
      break;
    case 'CHECK':
      await cmdCheck(ctx);
      break;
    case 'GC':
      await cmdGc(ctx);
      break;
    case 'STATUS':
      await cmdStatus(ctx);
      break;
  }
  return out;
}

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/** Entry for dist/bin/tern. */
export function run(): void {
  void handle(process.env, readStdin()).then((o) => {
    if (o.stdout) fs.writeSync(1, o.stdout + '\n');
    process.exit(o.exitCode);
  });
}
