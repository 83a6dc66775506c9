/**
 * ternctl: the operator CLI. Each area registers its nouns from its own
 * module (cli/<area>.ts exporting `register(program)`), so this file only
 * composes them and maps errors to exit codes once.
 */
import { Command, CommanderError } from 'commander';
import { TernError, messageOf } from '../lib/errors';
import { register as registerNode, registerStatus } from './node';
import { register as registerEndpoint } from './endpoint';
import { register as registerBgp } from './bgp';
import { register as registerDoctor } from './doctor';
import { register as registerPolicy } from './policy';
import { register as registerIpam } from './ipam';

/** Exit codes: 0 ok, 1 operation failed, 2 usage, 3 not found, 4 datastore unavailable. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof TernError) {
    switch (e.code) {
      case 'INVALID_CONFIG':
      case 'DECODE_FAILURE':
      case 'UNSUPPORTED_FIELD':
        return 2;
      case 'NOT_FOUND':
      case 'UNKNOWN_CONTAINER':
        return 3;
      case 'TRY_AGAIN_LATER':
        return 4;
      default:
        return 1;
    }
  }
  return 1;
}

type Register = (program: Command) => void;
const registrations: Register[] = [
  // Each area adds its register function here.
  registerNode,
  registerStatus,
  registerEndpoint,
  registerBgp,
  registerDoctor,
  registerPolicy,
  registerIpam,
];

export function buildProgram(): Command {
  const program = new Command('ternctl')
    .description('Operate Tern: routed L3 container networking (CNI, IPAM, BGP, ACL)')
    .option('--datastore <path|urls>', 'datastore: a SQLite path, or comma-separated etcd URLs (env TERN_DATASTORE, then /etc/tern/tern.yaml)')
    .option('-o, --output <format>', 'output format: table or json', 'table')
    .showHelpAfterError()
    .exitOverride();
  for (const r of registrations) r(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`ternctl: ${messageOf(e)}\n`);
    return exitCodeFor(e);
  }
}

/** Entry for dist/bin/ternctl. */
export function run(): void {
  void main(process.argv).then((code) => process.exit(code || Number(process.exitCode ?? 0)));
}
