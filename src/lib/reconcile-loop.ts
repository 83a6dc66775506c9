/**
 * The one reconcile loop of the node daemon. A reconciler is one function:
 * read the desired state, observe the kernel, apply the difference, and say
 * when to run again. The loop gives every reconciler the same rules:
 *   - one run at a time; kicks during a run coalesce into one more run, and
 *     so do runNow() calls;
 *   - a burst of kicks within `coalesceMs` is one run;
 *   - a failed run is retried with exponential backoff (initial, doubling,
 *     capped), with no datastore change needed; a kick runs sooner;
 *   - a run may ask to run again after some time (a periodic resync that
 *     heals drift);
 *   - its state (runs, failures, last error, durations, next run) is public,
 *     for status and metrics.
 */
import { messageOf } from './errors';
import type { Logger } from './log';

export interface ReconcileOutcome {
  /** Run again after this many ms, even without a kick (periodic resync). */
  againMs?: number;
}

export interface LoopStatus {
  name: string;
  runs: number;
  failures: number;
  /** Failures since the last success; drives the backoff. */
  consecutiveFailures: number;
  lastRun?: string;
  lastSuccess?: string;
  lastError?: string;
  lastDurationMs?: number;
  /** When the next run is scheduled (ISO), if one is. */
  nextRun?: string;
  running: boolean;
}

export interface LoopOptions {
  name: string;
  run: () => Promise<ReconcileOutcome | void>;
  coalesceMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  log?: Logger;
  /** Called after every run (metrics). */
  onRun?: (ok: boolean, ms: number) => void;
}

export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 };

/** The delay before retry number `failures` (1-based): initial, doubling, capped (pure). */
export function backoffMs(failures: number, b = DEFAULT_BACKOFF): number {
  return Math.min(b.maxMs, b.initialMs * 2 ** Math.max(0, failures - 1));
}

export class ReconcileLoop {
  readonly status: LoopStatus;
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private current?: Promise<void>;
  /** The run that callers of runNow() arriving during `current` wait for. */
  private pending?: Promise<boolean>;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: LoopOptions) {
    this.status = { name: opts.name, runs: 0, failures: 0, consecutiveFailures: 0, running: false };
  }

  /** Something changed: run within `coalesceMs` (or right after the run in progress). */
  kick(): void {
    this.schedule(this.opts.coalesceMs ?? 0);
  }

  /**
   * Run now and wait for a run that started after this call (so it has read
   * every write made before it); a failure is scheduled for retry and also
   * returned. Callers arriving while a run is in progress share the one run
   * after it: twenty concurrent CNI DELs cost two runs, not twenty in a row.
   */
  runNow(): Promise<boolean> {
    if (!this.current) return this.runNowIdle();
    this.pending ??= (async () => {
      while (this.current) await this.current;
      this.pending = undefined; // callers from here on need a run that starts after them
      return this.runNowIdle();
    })();
    return this.pending;
  }

  private async runNowIdle(): Promise<boolean> {
    this.clearTimer();
    await this.runOnce();
    return this.status.consecutiveFailures === 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    while (this.current) await this.current;
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.status.nextRun = undefined;
  }

  /** Run after `ms`, unless a run is already due sooner. */
  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.current) {
      this.again = true;
      return;
    }
    const at = Date.now() + ms;
    if (at >= this.timerAt) return;
    this.clearTimer();
    this.timerAt = at;
    this.status.nextRun = new Date(at).toISOString();
    this.timer = setTimeout(() => {
      this.clearTimer();
      void this.runOnce();
    }, ms);
    this.timer.unref?.();
  }

  private async runOnce(): Promise<void> {
    if (this.stopped) return;
    let done!: () => void;
    this.current = new Promise((r) => (done = r));
    this.again = false;
    this.status.running = true;
    const t0 = Date.now();
    let next: number | undefined;
    let ok = false;
    try {
      const out = await this.opts.run();
      ok = true;
      this.status.consecutiveFailures = 0;
      this.status.lastError = undefined;
      this.status.lastSuccess = new Date().toISOString();
      next = out?.againMs;
    } catch (e) {
      this.status.failures++;
      this.status.consecutiveFailures++;
      this.status.lastError = messageOf(e);
      next = backoffMs(this.status.consecutiveFailures, this.opts.backoff);
      this.opts.log?.error({ err: e, loop: this.opts.name, retryInMs: next }, `${this.opts.name} failed; retrying`);
    } finally {
      const ms = Date.now() - t0;
      this.status.runs++;
      this.status.running = false;
      this.status.lastRun = new Date().toISOString();
      this.status.lastDurationMs = ms;
      this.current = undefined;
      done();
      this.opts.onRun?.(ok, ms);
    }
    if (this.again) this.schedule(0);
    else if (next !== undefined) this.schedule(next);
  }
}
