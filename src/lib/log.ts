/**
 * Logging. The long-running processes (daemon, BGP speaker) log through pino,
 * asynchronously. One-shot processes (the CNI plugins, which exit right after
 * one request) write the same JSON lines synchronously with the small writer
 * below: loading pino costs such a process more than everything it logs.
 * pino is loaded only when a long-running process asks for a logger.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

type LogFn = (objOrMsg: unknown, msg?: string) => void;

/** What modules use of a logger; pino's loggers are ones. */
export interface Logger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  child(bindings: Record<string, unknown>): Logger;
  flush(): void;
}

export interface LogOptions {
  level?: string;
  /** Append to this file; otherwise stderr. Never stdout: that is the CNI result channel. */
  file?: string;
  /** Synchronous writes (the CNI binary, which exits right after). The daemon logs async. */
  sync?: boolean;
  name?: string;
}

/** pino's numeric levels, so both writers produce the same records. */
const LEVELS: Record<string, number> = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10, silent: Infinity };

/** Only entry points call this; modules take a child with fixed keys. */
export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level && opts.level in LEVELS ? opts.level : 'info';
  const name = opts.name ?? 'tern';
  if (opts.sync ?? true) return new LineLogger(LEVELS[level], openSink(opts.file), { pid: process.pid, name });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pino = require('pino') as typeof import('pino');
  let dest: import('pino').DestinationStream;
  if (opts.file) {
    try {
      fs.mkdirSync(path.dirname(opts.file), { recursive: true });
      dest = pino.destination({ dest: opts.file, sync: false, append: true, mkdir: true });
    } catch {
      dest = pino.destination({ fd: 2, sync: false });
    }
  } else {
    dest = pino.destination({ fd: 2, sync: false });
  }
  return pino({ level, name, base: { pid: process.pid } }, dest);
}

/** A logger that drops everything: for pure-core tests and library callers. */
export function silentLogger(): Logger {
  return new LineLogger(Infinity, -1, {});
}

/** The log file opened for appending, else stderr (a file that cannot be opened must not fail the request). */
function openSink(file: string | undefined): number {
  if (!file) return 2;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    return fs.openSync(file, 'a');
  } catch {
    return 2;
  }
}

/** pino's record layout (level, time, bindings, fields, msg) written with one write(2) per record. */
class LineLogger implements Logger {
  constructor(
    private readonly min: number,
    private readonly fd: number,
    private readonly bindings: Record<string, unknown>,
  ) {}

  fatal: LogFn = (o, m) => this.write(60, o, m);
  error: LogFn = (o, m) => this.write(50, o, m);
  warn: LogFn = (o, m) => this.write(40, o, m);
  info: LogFn = (o, m) => this.write(30, o, m);
  debug: LogFn = (o, m) => this.write(20, o, m);
  trace: LogFn = (o, m) => this.write(10, o, m);

  child(bindings: Record<string, unknown>): Logger {
    return new LineLogger(this.min, this.fd, { ...this.bindings, ...bindings });
  }

  flush(): void {
    /* every record is written when it is logged */
  }

  private write(level: number, objOrMsg: unknown, msg?: string): void {
    if (level < this.min || this.fd < 0) return;
    let fields: Record<string, unknown> = {};
    if (typeof objOrMsg === 'string') msg = objOrMsg;
    else if (objOrMsg instanceof Error) [fields, msg] = [{ err: objOrMsg }, msg ?? objOrMsg.message];
    else if (objOrMsg && typeof objOrMsg === 'object') fields = objOrMsg as Record<string, unknown>;
    const rec = { level, time: Date.now(), ...this.bindings, ...fields, ...(msg !== undefined ? { msg } : {}) };
    let line: string;
    try {
      line = JSON.stringify(rec, replacer);
    } catch (e) {
      line = JSON.stringify({ level, time: rec.time, ...this.bindings, msg, logError: String(e) });
    }
    try {
      fs.writeSync(this.fd, line + '\n');
    } catch {
      /* a full disk must not fail the request being logged */
    }
  }
}

/** Errors as pino's serializer writes them (type, message, stack, own fields, cause); bigints as text. */
function replacer(this: unknown, _key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (!(v instanceof Error)) return v;
  const out: Record<string, unknown> = { type: v.constructor.name, message: v.message, stack: v.stack };
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = x;
  if (v.cause !== undefined) out.cause = v.cause;
  return out;
}
