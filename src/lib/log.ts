import pino, { type Logger, type Level } from 'pino';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Append to this file; otherwise stderr. Never stdout: that is the CNI result channel. */
  file?: string;
  /** Synchronous writes (the CNI binary, which exits right after). The daemon logs async. */
  sync?: boolean;
  name?: string;
}

const LEVELS: ReadonlySet<string> = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Only entry points call this; modules take a child with fixed keys. */
export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level && LEVELS.has(opts.level) ? (opts.level as Level) : 'info';
  let dest: pino.DestinationStream;
  if (opts.file) {
    try {
      fs.mkdirSync(path.dirname(opts.file), { recursive: true });
      dest = pino.destination({ dest: opts.file, sync: opts.sync ?? true, append: true, mkdir: true });
    } catch {
      dest = pino.destination({ fd: 2, sync: opts.sync ?? true });
    }
  } else {
    dest = pino.destination({ fd: 2, sync: opts.sync ?? true });
  }
  return pino({ level, name: opts.name ?? 'tern', base: { pid: process.pid } }, dest);
}

/** A logger that drops everything: for pure-core tests and library callers. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
