/**
 * The daemon's ACL side: it keeps this node's iptables rules and ipsets equal
 * to what the datastore's policies, tenants and endpoints compile to, and
 * feeds the watched policy directory (default /etc/tern/policies.d) into the
 * datastore. A directory with any invalid file changes nothing: the problems
 * are logged with file, line and field, and the last good state stays.
 */
import * as fs from 'node:fs';
import type { Logger } from '../lib/log';
import { messageOf } from '../lib/errors';
import type { Store, Watcher } from '../datastore/types';
import { ACL_PREFIX, aclInUse, kernelHasRules, planPolicyDir, storedResources, syncFromStore, PolicyFileError, formatProblem, type Resource } from '../acl';
import { loadFiles, policyFiles } from '../acl/load';
import { TernError } from '../lib/errors';

export interface AclStatus {
  /** Some policy, tier, tenant or setting is stored, or this daemon has programmed rules before. */
  active: boolean;
  backend?: string;
  lastSync?: string;
  lastError?: string;
  syncs: number;
  endpoints: number;
  policies: number;
  policyDir: { path: string; present: boolean; resources: number; lastError?: string };
}

const RETRY_MS = 5_000;
const DIR_RESCAN_MS = 2_000;
/** A directory change is read once nothing in it has changed for this long (an editor or `cp` mid-write). */
export const DIR_SETTLE_MS = 300;

export class AclReconciler {
  private watcher?: Watcher;
  private running: Promise<void> = Promise.resolve();
  private dirty = false;
  private dirDirty = false;
  private fsWatcher?: fs.FSWatcher;
  private rescan?: NodeJS.Timeout;
  private kickTimer?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private dirSnapshot = '';
  /** What each file defined when the directory was last applied. */
  private applied = new Map<string, Resource[]>();
  /** Whether the kernel holds Tern's ACL rules (so they must follow the datastore even when no policy is left). */
  programmed = false;
  readonly state: AclStatus;

  constructor(private readonly deps: { store: Store; log: Logger; policyDir: string; onSync?: (ok: boolean, ms: number) => void }) {
    this.state = { active: false, syncs: 0, endpoints: 0, policies: 0, policyDir: { path: deps.policyDir, present: false, resources: 0 } };
  }

  async start(): Promise<void> {
    this.programmed = kernelHasRules();
    if (this.deps.policyDir) await this.readDir();
    const revision = await this.deps.store.revision(); // watch from here: whatever lands during the first sync triggers another
    await this.sync();
    this.watcher = await this.deps.store.watch(ACL_PREFIX, revision, () => this.kick(), (e) => this.deps.log.warn({ err: e }, 'ACL watch failed'));
    if (this.deps.policyDir) {
      this.watchDir();
      // fs.watch misses a directory created later and some editors' renames; a cheap rescan covers both.
      this.rescan = setInterval(() => this.kickDir(), DIR_RESCAN_MS);
      this.rescan.unref();
    }
  }

  private watchDir(): void {
    if (this.fsWatcher) return;
    try {
      this.fsWatcher = fs.watch(this.deps.policyDir, () => this.kickDir());
      this.fsWatcher.on('error', () => {
        this.fsWatcher?.close();
        this.fsWatcher = undefined;
      });
    } catch {
      this.fsWatcher = undefined; // not there yet: the rescan picks it up
    }
  }

  private kickDir(): void {
    if (this.dirDirty || this.stopped) return;
    this.dirDirty = true;
    this.running = this.running.then(async () => {
      this.dirDirty = false;
      await this.readDir();
      this.watchDir();
    });
  }

  private kick(): void {
    if (this.dirty || this.stopped) return;
    this.dirty = true;
    // Coalesce a burst of writes (a policy file of many documents, many pods at once) into one apply.
    this.kickTimer = setTimeout(() => {
      this.running = this.running.then(async () => {
        this.dirty = false;
        await this.sync();
      });
    }, 50);
  }

  /** Names, sizes and times of the directory's policy files: unchanged, nothing to parse. */
  private snapshotDir(): string {
    const dir = this.deps.policyDir;
    return policyFiles(dir)
      .map((f) => {
        const st = fs.statSync(f);
        return `${f}:${st.size}:${st.mtimeMs}`;
      })
      .join('|');
  }

  /**
   * Directory -> datastore: all files valid, or nothing written. A change is
   * read only once the directory has settled, and a file found empty keeps
   * what it last defined: rewriting a file in place (truncate, then write)
   * never applies the half-written or empty file. Delete a file to remove
   * what it defined.
   */
  private async readDir(): Promise<void> {
    const d = this.state.policyDir;
    const dir = this.deps.policyDir;
    if (!fs.existsSync(dir)) {
      d.present = false;
      return;
    }
    d.present = true;
    let snapshot: string;
    try {
      snapshot = this.snapshotDir();
      if (snapshot === this.dirSnapshot && !d.lastError) return;
      for (;;) {
        await new Promise((r) => setTimeout(r, DIR_SETTLE_MS));
        if (this.stopped) return;
        const again = this.snapshotDir();
        if (again === snapshot) break;
        snapshot = again;
      }
    } catch (e) {
      d.lastError = messageOf(e);
      return;
    }
    try {
      const { resources: desired, byFile, keptEmpty } = loadFiles(policyFiles(dir), this.applied);
      if (keptEmpty.length) this.deps.log.warn({ files: keptEmpty }, 'empty policy file keeps what it defined (being rewritten?); delete the file to remove its resources');
      const ops = planPolicyDir(desired, await storedResources(this.deps.store));
      if (ops.length) {
        const r = await this.deps.store.txn(ops);
        if (!r.ok) throw new TernError('CONFLICT', 'datastore transaction failed: the stored policies changed meanwhile');
        this.deps.log.info({ dir, written: ops.filter((o) => o.op === 'put').length, deleted: ops.filter((o) => o.op === 'delete').length }, 'policy directory applied');
      }
      this.applied = byFile;
      d.resources = desired.length;
      d.lastError = undefined;
      this.dirSnapshot = snapshot;
    } catch (e) {
      const msg = e instanceof PolicyFileError ? e.problems.map(formatProblem).join('; ') : messageOf(e);
      if (msg !== d.lastError) this.deps.log.error({ dir, problems: msg }, 'policy directory rejected; the previous policies stay in force');
      d.lastError = msg;
      this.dirSnapshot = snapshot;
    }
  }

  /** Datastore -> kernel, one compile and one diffed apply. */
  async sync(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.retry);
    const t0 = Date.now();
    try {
      const { resources: all, report: r } = await syncFromStore(this.deps.store, { when: (all) => aclInUse(all) || this.programmed });
      this.state.endpoints = all.filter((x) => x.kind === 'Endpoint').length;
      this.state.policies = all.filter((x) => x.kind === 'Policy').length;
      this.state.active = !!r;
      if (!r) return;
      this.programmed = true;
      this.state.backend = r.backend;
      this.state.syncs++;
      this.state.lastSync = new Date().toISOString();
      this.state.lastError = undefined;
      if (r.chainsWritten || r.setsWritten || r.setsDestroyed) this.deps.log.info({ chains: r.chainsWritten, sets: r.setsWritten, destroyed: r.setsDestroyed, backend: r.backend }, 'ACL rules in sync');
      this.deps.onSync?.(true, Date.now() - t0);
    } catch (e) {
      this.state.lastError = messageOf(e);
      this.deps.log.error({ err: e }, `ACL sync failed; retrying in ${RETRY_MS / 1000}s`);
      this.deps.onSync?.(false, Date.now() - t0);
      this.retry = setTimeout(() => this.kick(), RETRY_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    clearTimeout(this.kickTimer);
    clearInterval(this.rescan);
    this.fsWatcher?.close();
    await this.watcher?.close();
    await this.running;
  }
}

