/**
 * What every ternctl command shares: the output formats, tables, the
 * datastore wrapper that tells "datastore unavailable" apart, and the one
 * mapping from errors to exit codes and to printed (text or JSON) errors.
 */
import * as fs from 'node:fs';
import YAML from 'yaml';
import type { Command } from 'commander';
import { TernError, messageOf } from '../lib/errors';
import { PolicyFileError, formatProblem } from '../acl/errors';
import { withDatastore, type Store } from '../datastore';
import { loadDaemonConfig, parseDaemonConfig, type DaemonConfig } from '../node-daemon/config';

export const FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

/** Exit codes, as documented in the README. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, datastore: 4 } as const;

export function formatOf(cmd: Command): Format {
  return ((cmd.optsWithGlobals() as { output?: Format }).output ?? 'table') as Format;
}

/** Print data as JSON or YAML, or as the command's own text for table and wide. */
/** Resolves once the text is handed to stdout: main() exits right after an action, which cut long outputs to a pipe short. */
export function emit(cmd: Command, data: unknown, text: (wide: boolean) => string): Promise<void> {
  const f = formatOf(cmd);
  const body = f === 'json' ? JSON.stringify(data, null, 2) + '\n' : f === 'yaml' ? YAML.stringify(data) : text(f === 'wide');
  return new Promise((resolve) => process.stdout.write(body, () => resolve()));
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/**
 * Open the datastore ternctl resolves and run fn. A store that cannot be
 * opened or reached becomes TRY_AGAIN_LATER (exit 4), whatever it said.
 */
export async function withStore<T>(cmd: Command, fn: (s: Store) => Promise<T>, create = false): Promise<T> {
  let inside = false;
  try {
    return await withDatastore((cmd.optsWithGlobals() as { datastore?: string }).datastore, (s) => {
      inside = true;
      return fn(s);
    }, { create });
  } catch (e) {
    const unreachable = !inside ? !(e instanceof TernError && e.code === 'INVALID_CONFIG') : e instanceof TernError && (e.code === 'TRY_AGAIN_LATER' || (e.code === 'IO_FAILURE' && /^sqlite:/.test(e.message)));
    if (unreachable) throw new TernError('TRY_AGAIN_LATER', `datastore unavailable: ${messageOf(e)}`, { cause: e });
    throw e;
  }
}

/** A file named on the command line could not be read: missing is "not found" (3), anything else invalid input (2). */
export function fileError(file: string, e: unknown): TernError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new TernError('NOT_FOUND', `${file}: no such file or directory`);
  return new TernError('INVALID_CONFIG', `${file}: ${messageOf(e)}`);
}

/** An error whose answer was already printed as the command's JSON output: only its exit code is left to give. */
export class AlreadyReported extends Error {
  constructor(readonly error: unknown) {
    super(messageOf(error));
  }
}

/** Throws "not found" (exit 3) for a path named on the command line that does not exist. */
export function mustExist(file: string): void {
  if (!fs.existsSync(file)) throw new TernError('NOT_FOUND', `${file}: no such file or directory`);
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof AlreadyReported) return exitCodeFor(e.error);
  if (e instanceof TernError) {
    switch (e.code) {
      case 'INVALID_CONFIG':
      case 'DECODE_FAILURE':
      case 'UNSUPPORTED_FIELD':
      case 'INVALID_ENV':
      case 'INCOMPATIBLE_VERSION':
        return EXIT.usage;
      case 'NOT_FOUND':
      case 'UNKNOWN_CONTAINER':
        return EXIT.notFound;
      case 'TRY_AGAIN_LATER':
        return EXIT.datastore;
      default:
        return EXIT.failed;
    }
  }
  if ((e as NodeJS.ErrnoException)?.code === 'ENOENT') return EXIT.notFound;
  return EXIT.failed;
}

/** The error as `-o json` prints it: {"error": {code, message, field?, problems?}}. */
export function errorJson(e: unknown): { error: { code: string; message: string; field?: string; problems?: unknown[] } } {
  const code = e instanceof TernError ? e.code : (e as NodeJS.ErrnoException)?.code === 'ENOENT' ? 'NOT_FOUND' : 'INTERNAL';
  const out: { code: string; message: string; field?: string; problems?: unknown[] } = { code, message: messageOf(e) };
  if (e instanceof PolicyFileError) {
    out.field = e.problems[0].field;
    out.problems = e.problems;
  } else {
    const field = /field "([^"]+)"/.exec(messageOf(e));
    if (field) out.field = field[1];
  }
  return { error: out };
}

/** Print an error once: JSON on stdout with -o json, else text on stderr (every problem of a rejected policy file). */
export function printError(e: unknown, json: boolean): void {
  // A failed check (doctor, ipam check) has already printed its findings as the JSON answer.
  if (json && ((e instanceof TernError && e.code === 'CHECK_FAILED') || e instanceof AlreadyReported)) return;
  if (e instanceof AlreadyReported) return printError(e.error, json);
  if (json) process.stdout.write(JSON.stringify(errorJson(e)) + '\n');
  else if (e instanceof PolicyFileError) process.stderr.write(e.problems.map((p) => `ternctl: ${formatProblem(p)}`).join('\n') + '\n');
  else process.stderr.write(`ternctl: ${messageOf(e)}\n`);
}

/** Examples of each command, for its --help and the top-level list. */
export const examplesOf = new WeakMap<Command, string[]>();

export function example<C extends Command>(cmd: C, ...lines: string[]): C {
  examplesOf.set(cmd, lines);
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
}

/** Examples for the subcommands of `parent`, by name (for areas that build their commands in a loop). */
export function examplesFor(parent: Command, byName: Record<string, string[]>): void {
  for (const c of parent.commands) if (byName[c.name()]) example(c, ...byName[c.name()]);
}

export const DEFAULT_NODE_CONFIG = '/etc/tern/node.yaml';

/** The node daemon's configuration as ternctl finds it: --config, else /etc/tern/node.yaml when present, else the defaults. */
export function nodeConfig(file: string | undefined): DaemonConfig {
  if (file) return loadDaemonConfig(file);
  return fs.existsSync(DEFAULT_NODE_CONFIG) ? loadDaemonConfig(DEFAULT_NODE_CONFIG) : parseDaemonConfig({}, '(defaults)');
}
