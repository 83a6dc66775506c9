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
import { ReconcileLoop, type LoopStatus } from '../lib/reconcile-loop';
import type { Store, WatchEvent, Watcher } from '../datastore/types';
import { PrefixMirror } from '../datastore/mirror';
import { ACL_PREFIX, Applier, CompileMemo, IncrementalAcl, compileRuleset, kernelHasRules, planPolicyDir, storedResources, toInput, PolicyFileError, formatProblem, type ApplyReport, type CompiledRuleset, type IncrementalPlan, type Resource, type StoredResource } from '../acl';
import { loadFiles, policyFiles } from '../acl/load';
import type { Exec } from '../dataplane/exec';
import type { MemberOp } from '../dataplane/ipset-codec';
import { withNodeLock } from '../lib/lock';
import { cmp } from '../acl/resolve';
import { TernError } from '../lib/errors';

export interface AclStatus {
  /** Some policy, tier, tenant or setting is stored, or this daemon has programmed rules before. */
  active: boolean;
  backend?: string;
  lastSync?: string;
  lastError?: string;
  syncs: number;
  /** Of `syncs`, how many changed the kernel incrementally (pods joining or leaving: set members only, no compile, no save). */
  incrementalSyncs?: number;
  /** Full compiles run: a full sync of the records the last one saw reuses it. */
  compiles?: number;
  endpoints: number;
  policies: number;
  policyDir: { path: string; present: boolean; resources: number; lastError?: string };
  /** The datastore -> kernel loop (retries, backoff, durations). */
  loop?: LoopStatus;
}

/**
 * The full compile + diff runs at least this often, change or not: it heals
 * drift (someone flushed a chain) and re-derives what the incremental path
 * (pods joining and leaving) only patched.
 */
export const RESYNC_MS = 60_000;
const DIR_RESCAN_MS = 2_000;
/** How long a sync waits for the watch to catch up with the datastore before it lists everything instead. */
export const CATCH_UP_MS = 100;
/** A directory change is read once nothing in it has changed for this long (an editor or `cp` mid-write). */
export const DIR_SETTLE_MS = 300;

export class AclReconciler {
  private watcher?: Watcher;
  private fsWatcher?: fs.FSWatcher;
  private stopped = false;
  private dirSnapshot = '';
  /** What each file defined when the directory was last applied. */
  private applied = new Map<string, Resource[]>();
  /** Whether the kernel holds Tern's ACL rules (so they must follow the datastore even when no policy is left). */
  programmed = false;
  readonly state: AclStatus;
  private readonly applier: Applier;
  /** The last full compile, kept so a pod joining or leaving needs only its set members. */
  private readonly incr: IncrementalAcl;
  private lastFullAt = -Infinity;
  /** What one full compile lends the next: a policy edit rebuilds that policy's chains and the endpoint chains only. */
  private readonly memo = new CompileMemo();
  /** The last full compile and the records it was made from: datastore key -> text and parsed resource. */
  private compiled?: { records: Map<string, { value: string; resource: StoredResource }>; rs: CompiledRuleset };
  /** The ACL records as the watch reports them, so an incremental sync reads only what changed instead of listing all. */
  private readonly mirror = new PrefixMirror();
  /** The watch reported an error: the next full sync starts a new one. */
  private watchFailed = false;
  /** A sync is catching up: the events it is handed are its own to apply, not a reason for another run. */
  private absorbing = false;
  /** Datastore -> kernel; a burst of writes (a file of many documents, many pods at once) coalesces into one apply. */
  readonly loop: ReconcileLoop;
  /** Policy directory -> datastore; also rescans on its own, since fs.watch misses a directory created later and some editors' renames. */
  private readonly dirLoop: ReconcileLoop;

  /** `netnsPath`, `exec`, `memberWriter` and `generation`: the namespace to program and how tools, member writes and nf_tables generation reads reach it (tests); default where the daemon runs. */
  constructor(private readonly deps: { store: Store; log: Logger; policyDir: string; node?: string; onSync?: (ok: boolean, ms: number) => void; netnsPath?: string; exec?: Exec; memberWriter?: (ops: MemberOp[]) => Promise<void>; generation?: () => Promise<number> }) {
    this.applier = new Applier({ netnsPath: deps.netnsPath, exec: deps.exec, memberWriter: deps.memberWriter, generation: deps.generation }); // no logger: it would log every 60 s resync; this loop logs what changed
    this.incr = new IncrementalAcl(deps.node);
    this.loop = new ReconcileLoop({ name: 'acl', coalesceMs: 50, run: () => this.syncOnce(), log: deps.log, onRun: deps.onSync });
    this.dirLoop = new ReconcileLoop({ name: 'policy-dir', run: () => this.readDir(), log: deps.log });
    this.state = { active: false, syncs: 0, incrementalSyncs: 0, compiles: 0, endpoints: 0, policies: 0, policyDir: { path: deps.policyDir, present: false, resources: 0 }, loop: this.loop.status };
  }

  async start(): Promise<void> {
    this.programmed = kernelHasRules(this.deps.netnsPath);
    if (this.deps.policyDir) await this.dirLoop.runNow();
    const revision = await this.deps.store.revision(); // watch from here: whatever lands during the first sync triggers another
    await this.loop.runNow();
    this.watcher = await this.watchAcl(revision);
    if (this.deps.policyDir) this.watchDir();
  }

  private watchAcl(from: number): Promise<Watcher> {
    const onEvent = (e: WatchEvent) => {
      this.mirror.apply(e);
      if (!this.absorbing) this.loop.kick();
    };
    return this.deps.store.watch(ACL_PREFIX, from, onEvent, (e) => {
      this.mirror.invalidate();
      this.watchFailed = true;
      this.deps.log.warn({ err: e }, 'ACL watch failed');
      this.loop.kick();
    });
  }

  private watchDir(): void {
    if (this.fsWatcher || this.stopped) return;
    try {
      this.fsWatcher = fs.watch(this.deps.policyDir, () => this.dirLoop.kick());
      this.fsWatcher.on('error', () => {
        this.fsWatcher?.close();
        this.fsWatcher = undefined;
      });
    } catch {
      this.fsWatcher = undefined; // not there yet: the rescan picks it up
    }
  }

  /** Run a sync now and wait for it (`ternctl`-style callers and tests). */
  async sync(): Promise<void> {
    await this.loop.runNow();
  }

  /** A full compile + diff now, as the periodic resync does. */
  async resync(): Promise<void> {
    this.lastFullAt = -Infinity;
    await this.loop.runNow();
  }

  /** Sync now for a CNI ADD or DEL: resolves once the rules include every write so far, throws if they could not be programmed. */
  async syncOrThrow(): Promise<void> {
    if (!(await this.loop.runNow())) throw new TernError('IO_FAILURE', `ACL rules not programmed: ${this.loop.status.lastError ?? 'unknown error'}`);
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
  private async readDir(): Promise<{ againMs: number }> {
    await this.readDirOnce();
    this.watchDir();
    return { againMs: DIR_RESCAN_MS };
  }

  private async readDirOnce(): Promise<void> {
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

  /**
   * Datastore -> kernel, read and applied under the namespace's ACL lock (so
   * whoever syncs last has read every finished write). Pods joining or
   * leaving with nothing else changed take the incremental path; anything
   * else, a failed incremental step, and the periodic resync take one full
   * compile and one diffed apply. A failure is retried by the loop with backoff.
   */
  private async syncOnce(): Promise<{ againMs: number }> {
    if (this.stopped) return { againMs: RESYNC_MS };
    try {
      const { counts, report: r, incremental } = await withNodeLock(this.applier.lockFile, () => this.syncHoldingLock());
      this.state.endpoints = counts.endpoints;
      this.state.policies = counts.policies;
      this.state.active = !!(r || incremental);
      if (r || incremental) {
        this.programmed = true;
        this.state.backend = this.applier.backend;
        this.state.syncs++;
        this.state.lastSync = new Date().toISOString();
      }
      if (incremental?.lines.length) {
        this.state.incrementalSyncs = (this.state.incrementalSyncs ?? 0) + 1;
        this.deps.log.info({ joined: incremental.joined, left: incremental.left, changed: incremental.changed, members: incremental.lines.length }, 'ACL endpoints in sync');
      }
      if (r && (r.chainsWritten || r.setsWritten || r.setsDestroyed)) this.deps.log.info({ chains: r.chainsWritten, sets: r.setsWritten, destroyed: r.setsDestroyed, backend: r.backend }, 'ACL rules in sync');
      this.state.lastError = undefined;
      return { againMs: Math.max(1, RESYNC_MS - (Date.now() - this.lastFullAt)) };
    } catch (e) {
      this.state.lastError = messageOf(e);
      throw e;
    }
  }

  private async syncHoldingLock(): Promise<{ counts: { endpoints: number; policies: number }; report?: ApplyReport; incremental?: IncrementalPlan }> {
    /** The watch has caught up: the mirror holds what a list would return now. */
    let caughtUp = false;
    if (Date.now() - this.lastFullAt < RESYNC_MS && this.incr.ready) {
      const changes = await this.catchUp();
      caughtUp = !!changes;
      if (changes) {
        const plan = this.incr.planChanges(changes);
        if (plan) {
          try {
            await this.applier.applyMembersHoldingLock(plan.ops);
            this.incr.commit(plan);
            return { counts: countKinds(this.mirror.items.keys()), incremental: plan };
          } catch (e) {
            caughtUp = false;
            this.deps.log.warn({ err: e }, 'incremental ACL update failed; full sync');
          }
        }
      }
    }
    this.incr.forget(); // until the full apply has succeeded, the kernel is not what was remembered
    let items: { key: string; value: string }[];
    if (caughtUp && this.mirror.ready && this.compiled) {
      // A policy edit and the like, between periodic resyncs: the records from memory, in the datastore's key order, no list.
      items = [...this.mirror.items].map(([key, value]) => ({ key, value })).sort((a, b) => cmp(a.key, b.key));
    } else {
      this.mirror.beginSeed();
      const listed = await this.deps.store.list(ACL_PREFIX);
      items = listed.items;
      this.mirror.seed(items, listed.revision);
      if (this.watchFailed) await this.rewatch(listed.revision);
    }
    const counts = countKinds(items.map((kv) => kv.key));
    if (!items.length && !this.programmed) return { counts }; // aclInUse: anything stored
    // Only records whose text changed are parsed. The periodic resync usually finds none: the compile (a pure
    // function of the records) is reused.
    const prev = this.compiled?.records;
    if (!prev || prev.size !== items.length || !items.every(({ key, value }) => prev.get(key)?.value === value)) {
      const records = new Map<string, { value: string; resource: StoredResource }>();
      for (const { key, value } of items) {
        const p = prev?.get(key);
        records.set(key, p?.value === value ? p : { value, resource: JSON.parse(value) as StoredResource });
      }
      this.compiled = { records, rs: compileRuleset(toInput([...records.values()].map((r) => r.resource)), { node: this.deps.node, memo: this.memo }) };
      this.state.compiles = (this.state.compiles ?? 0) + 1;
    }
    const { records, rs } = this.compiled!;
    const all = [...records.values()].map((r) => r.resource);
    const report = await this.applier.applyHoldingLock(rs);
    this.incr.remember(items, all, rs);
    this.lastFullAt = Date.now();
    return { counts, report };
  }

  /**
   * The records changed since the kernel last took them in, once the mirror
   * has seen every write finished before this call; undefined if that cannot
   * be said (no watch yet, a failed one, one that lags): list everything.
   */
  private async catchUp(): Promise<Map<string, string | undefined> | undefined> {
    if (!this.watcher?.progress || !this.mirror.ready) return undefined;
    this.absorbing = true;
    try {
      await this.watcher.progress(CATCH_UP_MS);
    } catch (e) {
      this.deps.log.debug({ err: e }, 'ACL watch not caught up; listing');
      return undefined;
    } finally {
      this.absorbing = false;
    }
    return this.mirror.ready ? this.mirror.takeChanges() : undefined;
  }

  /** A new watch from the revision the mirror was just seeded at (the old one reported an error). */
  private async rewatch(revision: number): Promise<void> {
    const old = this.watcher;
    this.watcher = undefined;
    await old?.close();
    if (this.stopped) return;
    const w = await this.watchAcl(revision); // throws: still failed, tried again at the next full sync
    this.watchFailed = false;
    if (this.stopped) await w.close();
    else this.watcher = w;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.fsWatcher?.close();
    await this.watcher?.close();
    await this.dirLoop.stop();
    await this.loop.stop();
  }
}

function countKinds(keys: Iterable<string>): { endpoints: number; policies: number } {
  const c = { endpoints: 0, policies: 0 };
  for (const k of keys) {
    if (k.startsWith(`${ACL_PREFIX}Endpoint/`)) c.endpoints++;
    else if (k.startsWith(`${ACL_PREFIX}Policy/`)) c.policies++;
  }
  return c;
}
