/**
 * Applier: brings one network namespace's iptables and ipsets to a compiled
 * ruleset with one diff. Reads what exists (iptables-save, ipset save), writes
 * only the Tern chains that differ plus one jump per hook chain with
 * `iptables-restore --noflush --wait` (one COMMIT per table, atomic), and
 * changes set members in place, in an order that never admits a packet that
 * the old or the new ruleset denies (see `planSets`). If the iptables write
 * fails, every set change is undone, so the previous complete ruleset stays.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHAIN_PREFIX } from '../lib/constants';
import type { Logger } from '../lib/log';
import { withNodeLock } from '../lib/lock';
import { mustExec, netnsExec, type Exec } from '../dataplane/exec';
import type { MemberOp, MemberSetType } from '../dataplane/ipset-codec';
import { nftGeneration } from '../dataplane/nft-gen';
import { endpointSetName, type CompiledRuleset, type FamilyRuleset, type IpSetSpec } from './compile';
import { chainLines, createLine, hookSpec, HOOK_COMMENT, isTernChain } from './render';
import type { KnownRules, RulesMemory } from './known-rules';

export type Backend = 'nft' | 'legacy';
export { netnsExec, type Exec } from '../dataplane/exec';

function tool(backend: Backend, fam: 4 | 6, what: 'save' | 'restore'): string {
  return `${fam === 4 ? 'iptables' : 'ip6tables'}-${backend}-${what}`;
}

/**
 * Which iptables the host uses: whichever backend already holds more rules
 * (Tern's own, then anyone's); nf_tables when both are empty, as on current distros.
 */
export async function detectBackend(exec: Exec): Promise<Backend> {
  // The four saves run at once: each is a process start (~10 ms here), and a CNI ADD without a daemon waits for them.
  const count = async (b: Backend) => {
    let tern = 0;
    let all = 0;
    const saved = await Promise.all(([4, 6] as const).map((fam) => exec(tool(b, fam, 'save'), [])));
    for (const r of saved) {
      if (r.code !== 0) continue;
      for (const l of r.stdout.split('\n')) {
        if (!l.startsWith('-A ')) continue;
        all++;
        if (l.includes(HOOK_COMMENT)) tern++;
      }
    }
    return { tern, all };
  };
  const [nft, legacy] = await Promise.all([count('nft'), count('legacy')]);
  if (legacy.tern !== nft.tern) return legacy.tern > nft.tern ? 'legacy' : 'nft';
  return legacy.all > nft.all ? 'legacy' : 'nft';
}

interface KernelTable {
  /** Tern chain -> rule hashes in order ('?' for a rule without our comment). */
  chains: Map<string, string[]>;
  /** Tern chain -> rule bodies, when the table is one of our own rulesets (`knownTable`): compared instead of the hashes, which need not be computed. */
  bodies?: Map<string, string[]>;
  /** Hook chain -> its rules that jump to Tern (as saved), and whether the first rule is ours. */
  hooks: Map<string, { specs: string[]; firstIsOurs: boolean }>;
}

export function parseSave(text: string): KernelTable {
  const chains = new Map<string, string[]>();
  const hooks = new Map<string, { specs: string[]; firstIsOurs: boolean }>();
  let inFilter = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0];
      if (isTernChain(name)) chains.set(name, []);
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const sp = line.indexOf(' ', 3);
    const chain = line.slice(3, sp);
    const spec = line.slice(sp + 1);
    if (isTernChain(chain)) {
      const m = /--comment "?tern:([0-9a-f]+)"?/.exec(line);
      chains.get(chain)?.push(m ? m[1] : '?');
    } else {
      const h = hooks.get(chain) ?? { specs: [], firstIsOurs: false };
      const ours = spec.includes(HOOK_COMMENT) || new RegExp(`-j ${CHAIN_PREFIX}`).test(spec);
      if (h.specs.length === 0 && !hooks.has(chain)) h.firstIsOurs = ours;
      if (ours) h.specs.push(spec);
      hooks.set(chain, h);
    }
  }
  return { chains, hooks };
}

/** The `iptables-restore --noflush` input that turns `current` into `desired`; '' if nothing differs. */
export function planIptables(desired: FamilyRuleset, current: KernelTable): string {
  const decl: string[] = [];
  const rules: string[] = [];
  const tail: string[] = [];
  const want = new Set(desired.chains.map((c) => c.name));
  for (const c of desired.chains) {
    if (current.bodies) {
      const have = current.bodies.get(c.name);
      if (have && (have === c.rules || (have.length === c.rules.length && have.every((b, i) => b === c.rules[i])))) continue; // same bodies, same hashes
    }
    const lines = chainLines(c);
    const have = current.chains.get(c.name);
    if (!current.bodies && have && have.length === lines.length && have.every((h, i) => h === lines[i].hash)) continue;
    decl.push(`:${c.name} - [0:0]`); // declares, or flushes an existing chain under --noflush
    rules.push(...lines.map((l) => l.line));
  }
  for (const h of desired.hooks) {
    const k = current.hooks.get(h.chain);
    const spec = hookSpec(h);
    const exact = k?.specs.length === 1 && k.firstIsOurs && normalise(k.specs[0]) === normalise(spec);
    if (exact) continue;
    for (const s of k?.specs ?? []) rules.push(`-D ${h.chain} ${s}`);
    rules.push(`-I ${h.chain} 1 ${spec}`);
  }
  for (const [name] of current.chains) {
    if (want.has(name)) continue;
    decl.push(`:${name} - [0:0]`);
    tail.push(`-X ${name}`);
  }
  if (decl.length === 0 && rules.length === 0) return '';
  return ['*filter', ...decl, ...rules, ...tail, 'COMMIT', ''].join('\n');
}

/** The table as it stands once `rs` has been applied (hooks exact, no other Tern chain): what a save would parse to. */
export function knownTable(rs: FamilyRuleset): KernelTable {
  return {
    chains: new Map(rs.chains.map((c) => [c.name, []])), // the names; the bodies stand in for the hashes
    bodies: new Map(rs.chains.map((c) => [c.name, c.rules])), hooks: new Map(rs.hooks.map((h) => [h.chain, { specs: [hookSpec(h)], firstIsOurs: true }])) };
}

/** `iptables-save` text of the table once `rs` has been applied (Tern's part), for a rollback. */
function savedForm(rs: FamilyRuleset): string {
  return ['*filter', ...rs.chains.map((c) => `:${c.name} - [0:0]`), ...rs.hooks.map((h) => `-A ${h.chain} ${hookSpec(h)}`), ...rs.chains.flatMap((c) => chainLines(c).map((l) => l.line)), 'COMMIT', ''].join('\n');
}

function normalise(spec: string): string {
  return spec.replace(/"/g, '').replace(/\s+/g, ' ').trim();
}

/** Members as `ipset save` prints them (host prefixes dropped, IPv6 compressed by the kernel). */
function normMember(type: IpSetSpec['type'], m: string): string {
  return type === 'hash:net,iface' ? m.replace(/\/(32|128),/, ',') : m;
}

export function parseIpsetSave(text: string): Map<string, { type: string; members: Set<string> }> {
  const sets = new Map<string, { type: string; members: Set<string> }>();
  for (const line of text.split('\n')) {
    const p = line.split(' ');
    if (p[0] === 'create' && p[1].startsWith(CHAIN_PREFIX)) sets.set(p[1], { type: p[2], members: new Set() });
    else if (p[0] === 'add') sets.get(p[1])?.members.add(p.slice(2).join(' '));
  }
  return sets;
}

/**
 * The set side of one apply, in the order it runs (pure). Sets are changed in
 * place, member by member, never swapped whole:
 *   create  new sets, filled; no rule references them yet
 *   close   remove from the endpoint gate (tern-ep4/6) every entry that goes,
 *           and every entry of an address whose memberships in other sets
 *           change: FORWARD and INPUT drop such an address both ways
 *   members add and delete members of the other existing sets
 *   (rules)  the iptables write, atomic per family
 *   open    add the gate entries the new ruleset has
 *   destroy sets nothing references any more
 * So a packet only ever meets the old ruleset, a closed gate (drop), or the
 * new ruleset: an address whose state is in flux passes nothing new until it
 * is complete (a new pod is admitted last, a leaving pod refused first).
 * `undo` restores the sets as they were, should the rules fail.
 */
export interface SetPlan {
  create: string[];
  close: string[];
  members: string[];
  open: string[];
  destroy: string[];
  undo: string[];
  setsWritten: number;
}

/** Tern's sets as read; `initval` (the set's random hash seed) when read over netlink. */
type KernelSets = Map<string, { type: string; members: Set<string>; initval?: number }>;

/** The address a member is about (hash:ip, hash:ip,port and hash:net,iface members). */
function memberAddr(m: string): string {
  return m.split(',')[0].replace(/\/(32|128)$/, '');
}

export function planSets(desired: IpSetSpec[], current: KernelSets): SetPlan {
  const plan: SetPlan = { create: [], close: [], members: [], open: [], destroy: [], undo: [], setsWritten: 0 };
  const gates = new Set([endpointSetName(4), endpointSetName(6)]);
  const touched = new Set<string>();
  const undoMembers: string[] = [];
  const created: string[] = [];
  /** The set as the kernel has it, or undefined after planning to create it (filled, before the rules that name it). */
  const existing = (s: IpSetSpec) => {
    const have = current.get(s.name);
    if (have && have.type === s.type) return { have, want: new Set(s.members.map((m) => normMember(s.type, m))) };
    // A set of another type under our name (never produced by one compiler version) is replaced.
    if (have) plan.create.push(`destroy ${s.name}`);
    plan.create.push(createLine(s), ...s.members.map((m) => `add ${s.name} ${m}`));
    created.push(s.name);
    plan.setsWritten++;
    return undefined;
  };
  for (const s of desired) {
    if (gates.has(s.name)) continue;
    const e = existing(s);
    if (!e) continue;
    const { have, want } = e;
    const add = [...want].filter((m) => !have.members.has(m));
    const del = [...have.members].filter((m) => !want.has(m));
    if (!add.length && !del.length) continue;
    plan.setsWritten++;
    for (const m of [...add, ...del]) touched.add(memberAddr(m));
    plan.members.push(...del.map((m) => `del ${s.name} ${m}`), ...add.map((m) => `add ${s.name} ${m}`));
    undoMembers.push(...add.map((m) => `del ${s.name} ${m}`), ...del.map((m) => `add ${s.name} ${m}`));
  }
  const reopen: string[] = [];
  for (const s of desired) {
    if (!gates.has(s.name)) continue;
    const e = existing(s);
    if (!e) continue;
    const { have, want } = e;
    const close = [...have.members].filter((m) => !want.has(m) || touched.has(memberAddr(m)));
    const open = [...want].filter((m) => !have.members.has(m) || touched.has(memberAddr(m)));
    if (!close.length && !open.length) continue;
    plan.setsWritten++;
    plan.close.push(...close.map((m) => `del ${s.name} ${m}`));
    plan.open.push(...open.map((m) => `add ${s.name} ${m}`));
    reopen.push(...close.map((m) => `add ${s.name} ${m}`));
  }
  const wanted = new Set(desired.map((s) => s.name));
  plan.destroy = [...current.keys()].filter((n) => !wanted.has(n)).map((n) => `destroy ${n}`);
  // Undo: members back first (gate still closed), then the gate, then what was created.
  plan.undo = [...undoMembers, ...reopen, ...created.map((n) => `destroy ${n}`)];
  return plan;
}

/** Where an apply stands; a hook between the steps lets tests probe every intermediate kernel state. */
export type ApplyStep = 'create' | 'close' | 'members' | 'rules' | 'open';

export interface ApplyOptions {
  /** Namespace to program (a /run/netns path). Without it, the current one. */
  netnsPath?: string;
  backend?: Backend;
  log?: Logger;
  /** Lock file serialising concurrent appliers on one namespace. */
  lockFile?: string;
  /** Runs the tools; default: nsenter into `netnsPath`, asynchronously. */
  exec?: Exec;
  /** Called after each step that changed the kernel. */
  afterStep?: (step: ApplyStep) => Promise<void> | void;
  /** Writes the incremental path's member changes; default: netlink in `netnsPath` (no process). */
  memberWriter?: (ops: MemberOp[]) => Promise<void>;
  /**
   * The nf_tables generation of `netnsPath` (nft backend only); default:
   * NFT_MSG_GETGEN over netlink, or none when `exec` is given (tests' own tools).
   */
  generation?: () => Promise<number>;
  /**
   * Read Tern's sets and write set members over netlink, and read the
   * generation that way, rather than through `exec` (no process); default:
   * when no `exec` is given.
   */
  netlink?: boolean;
  /**
   * Knowledge of the rules kept between processes (known-rules.ts): loaded
   * before an apply, so a process that finds Tern's own last generation reads
   * neither the backend nor the rules, and rewritten (or dropped) after it.
   */
  memory?: RulesMemory;
}

export interface ApplyReport {
  backend: Backend;
  chainsWritten: number;
  setsWritten: number;
  setsDestroyed: number;
  restoreText: { v4: string; v6: string };
}

/** A ruleset's rules and hooks, hashed (what an apply compares with the kernel's, sets aside). */
const fingerprints = new WeakMap<CompiledRuleset, string>();
function fingerprint(rs: CompiledRuleset): string {
  let f = fingerprints.get(rs);
  if (!f) {
    const h = crypto.createHash('sha256');
    for (const fam of [rs.v4, rs.v6]) h.update(JSON.stringify([fam.hooks, fam.chains]));
    fingerprints.set(rs, (f = h.digest('hex')));
  }
  return f;
}

/**
 * Up to this many member changes go over netlink, one acknowledged request
 * each; a bigger batch (a label change moving many addresses) goes to one
 * `ipset restore`, whose process start is then the smaller cost (measured at
 * load 6: 64 changes 4.0 ms against 5.5 ms, 256 changes 11.3 against 8.6 ms).
 */
const NETLINK_MAX_OPS = 128;
/** Set types whose members ipset-codec.ts encodes (all the compiler creates). */
const NETLINK_WRITABLE = new Set<string>(['hash:ip', 'hash:net', 'hash:ip,port', 'hash:net,iface'] satisfies MemberSetType[]);

export class Applier {
  private readonly exec: Exec;
  private detected?: Backend;
  private readonly generation?: () => Promise<number>;
  /**
   * The nf_tables generation at which the kernel's rules were known to equal
   * `rs` (fingerprint `rules`): read and found equal, or written by this
   * applier with no other commit in between.
   */
  private verified?: { gen: number; rules: string; rs: CompiledRuleset };

  private readonly netlink: boolean;

  constructor(private readonly opts: ApplyOptions = {}) {
    this.exec = opts.exec ?? netnsExec(opts.netnsPath);
    this.detected = opts.backend;
    this.netlink = opts.netlink ?? !opts.exec;
    this.generation = opts.generation ?? (this.netlink ? () => nftGeneration(opts.netnsPath) : undefined);
  }

  /**
   * Tern's sets as the kernel has them: one netlink dump, or `ipset save`
   * when netlink is off or the dump holds something Tern does not write.
   * Always read, never remembered: ipset has no generation to tell whether
   * someone else changed a set since.
   */
  private async readSets(): Promise<KernelSets> {
    if (this.netlink) {
      try {
        const { listSets } = await import('../dataplane/ipset-nl');
        return await listSets(isTernChain, this.opts.netnsPath);
      } catch {
        /* read them the way ipset prints them */
      }
    }
    return parseIpsetSave(await this.must('ipset', ['save']));
  }

  /** Member lines of a set plan ("add|del SET MEMBER"): over netlink when on, else one `ipset restore`. */
  private async setMembers(lines: string[], types: Map<string, string>, step: ApplyStep): Promise<void> {
    if (!lines.length) return;
    const ops = lines.map((l) => {
      const [op, set, ...m] = l.split(' ');
      return { op: op as MemberOp['op'], set, type: types.get(set) as MemberSetType, member: m.join(' ') };
    });
    if (!this.netlink || lines.length > NETLINK_MAX_OPS || !ops.every((o) => NETLINK_WRITABLE.has(o.type))) return this.ipset(lines, step);
    await this.applyMembersHoldingLock(ops);
    await this.opts.afterStep?.(step);
  }

  /** The remembered rules, if the kernel provably still holds them: the nf_tables generation and the gate sets are the ones recorded. */
  private async recall(k: KnownRules, sets: KernelSets): Promise<{ gen: number; rs: CompiledRuleset } | undefined> {
    if (!Object.entries(k.gates).every(([name, initval]) => sets.get(name)?.initval === initval)) return undefined;
    const gen = await this.generation?.().catch(() => undefined);
    return gen === k.gen ? { gen, rs: k.rs } : undefined;
  }

  /** Keep what this apply proved (`verified`) for the next process, or forget what no longer holds. */
  private async remember(sets: KernelSets, reread: boolean): Promise<void> {
    const memory = this.opts.memory;
    if (!memory) return;
    const v = this.verified;
    if (v && reread) sets = await this.readSets().catch(() => new Map());
    const gates: Record<string, number> = {};
    for (const name of [endpointSetName(4), endpointSetName(6)]) {
      const initval = sets.get(name)?.initval;
      if (initval !== undefined) gates[name] = initval;
    }
    memory.save(v && Object.keys(gates).length ? { gen: v.gen, rs: v.rs, gates } : undefined);
  }

  /** The generation now, on the nft backend when it can be read; undefined otherwise (then every apply reads the rules). */
  private async currentGeneration(backend: Backend): Promise<number | undefined> {
    if (backend !== 'nft' || !this.generation) return undefined;
    return this.generation().catch(() => undefined);
  }

  /** The iptables backend (nft or legacy), once known: given, or detected by the first call that needs it. */
  get backend(): Backend | undefined {
    return this.detected;
  }

  async resolveBackend(): Promise<Backend> {
    this.detected ??= await detectBackend(this.exec);
    return this.detected;
  }

  private must(cmd: string, args: string[], input?: string): Promise<string> {
    return mustExec(this.exec, cmd, args, input);
  }

  async save(fam: 4 | 6): Promise<string> {
    return this.must(tool(await this.resolveBackend(), fam, 'save'), ['-t', 'filter']);
  }

  /** The lock file serialising the appliers of this namespace. */
  get lockFile(): string {
    return this.opts.lockFile ?? defaultLock(this.opts.netnsPath);
  }

  apply(rs: CompiledRuleset): Promise<ApplyReport> {
    return withNodeLock(this.lockFile, () => this.applyHoldingLock(rs));
  }

  private async ipset(lines: string[], step?: ApplyStep): Promise<void> {
    if (!lines.length) return;
    await this.must('ipset', ['restore', '-exist'], lines.join('\n') + '\n');
    if (step) await this.opts.afterStep?.(step);
  }

  /**
   * The incremental path's member changes (incremental.ts), already in apply
   * order (gate closed, members, gate opened), written over netlink one by
   * one in that order; the first failure stops the rest, as in `ipset
   * restore`. The caller holds `lockFile`.
   */
  async applyMembersHoldingLock(ops: MemberOp[]): Promise<void> {
    if (!ops.length) return;
    if (this.opts.memberWriter) return this.opts.memberWriter(ops);
    const { applyMemberOps } = await import('../dataplane/ipset-nl');
    await applyMemberOps(ops, this.opts.netnsPath);
  }

  /** Apply when the caller already holds `lockFile` (it read its input under the lock too). */
  async applyHoldingLock(rs: CompiledRuleset): Promise<ApplyReport> {
    // Another process's record of its own last write, if any: while the kernel proves it, the backend is nft and the rules
    // are known, nothing to detect or read. Without one, the backend is detected while the sets are read.
    const record = this.detected === 'legacy' || !this.generation ? undefined : this.opts.memory?.load();
    const [current] = await Promise.all([this.readSets(), record ? undefined : this.resolveBackend()]);
    const recalled = record && (await this.recall(record, current));
    if (recalled) {
      this.detected = 'nft';
      this.verified = { gen: recalled.gen, rules: fingerprint(recalled.rs), rs: recalled.rs };
    }
    const backend = await this.resolveBackend();
    const rules = fingerprint(rs);
    const gen = recalled?.gen ?? (await this.currentGeneration(backend));
    // No nf_tables commit since the rules were known: the kernel holds `known`, nothing to read. The same rules: nothing to write
    // either (sets are still read, ipset has no generation); other rules: the difference from `known`.
    const known = gen !== undefined && this.verified?.gen === gen ? this.verified.rs : undefined;
    const unchanged = known !== undefined && this.verified!.rules === rules;
    this.verified = undefined;
    const sets = planSets([...rs.v4.sets, ...rs.v6.sets], current);
    const report: ApplyReport = { backend, chainsWritten: 0, setsWritten: sets.setsWritten, setsDestroyed: 0, restoreText: { v4: '', v6: '' } };
    const written: { fam: 4 | 6; before: () => Promise<string> }[] = [];
    let setsTouched = false;
    try {
      // Both families are planned and checked before anything is written.
      const plans = await Promise.all(
        [rs.v4, rs.v6].map(async (fam) => {
          if (unchanged) return { fam: fam.family, before: async () => '', plan: '' };
          if (known) {
            const was = fam.family === 4 ? known.v4 : known.v6;
            return { fam: fam.family, before: async () => savedForm(was), plan: planIptables(fam, knownTable(was)) };
          }
          const saved = await this.save(fam.family);
          return { fam: fam.family, before: async () => saved, plan: planIptables(fam, parseSave(saved)) };
        }),
      );
      report.restoreText = { v4: plans[0].plan, v6: plans[1].plan };
      setsTouched = true;
      await this.ipset(sets.create, 'create'); // before the check: the new rules name these sets
      // The check keeps a write that would be refused from changing anything first. With one restore to run and no set
      // change between the check and it, the restore is its own check: refused, it commits nothing either.
      const restores = plans.filter((p) => p.plan).length;
      if (restores > 1 || sets.close.length || sets.members.length) for (const p of plans) if (p.plan) await this.must(tool(backend, p.fam, 'restore'), ['--noflush', '--wait', '--test'], p.plan);
      const types = new Map([...rs.v4.sets, ...rs.v6.sets].map((s) => [s.name, s.type as string]));
      await this.setMembers(sets.close, types, 'close');
      await this.setMembers(sets.members, types, 'members');
      for (const p of plans) {
        if (!p.plan) continue;
        report.chainsWritten += (p.plan.match(/^:/gm) ?? []).length;
        await this.must(tool(backend, p.fam, 'restore'), ['--noflush', '--wait'], p.plan);
        written.push({ fam: p.fam, before: p.before });
      }
      if (written.length) await this.opts.afterStep?.('rules');
      await this.setMembers(sets.open, types, 'open');
      // The generation moved by exactly our own commits (one per restore; none when nothing was written): nobody else
      // committed since it was read before the save, so the kernel now holds `rs`, and the next apply may trust that.
      // Any other move (another writer, a commit racing ours) leaves it unknown: the next apply reads the rules.
      if (gen !== undefined) {
        const after = await this.currentGeneration(backend);
        if (after !== undefined && ((after - gen) >>> 0) === written.length) this.verified = { gen: after, rules, rs };
      }
    } catch (e) {
      for (const w of written) {
        const back = rollbackText(await w.before(), await this.save(w.fam));
        if (back) await this.exec(tool(backend, w.fam, 'restore'), ['--noflush', '--wait'], back);
      }
      if (setsTouched && sets.undo.length) await this.exec('ipset', ['restore', '-exist'], sets.undo.join('\n') + '\n');
      this.opts.memory?.save(undefined);
      this.opts.log?.warn({ err: e }, 'ACL apply failed; previous ruleset kept');
      throw e;
    }
    await this.remember(current, sets.create.length > 0);
    // Sets no rule references any more. One batch; should a set still be in use (someone else's rule), one at a time.
    if (sets.destroy.length && (await this.exec('ipset', ['restore'], sets.destroy.join('\n') + '\n')).code === 0) report.setsDestroyed += sets.destroy.length;
    else for (const d of sets.destroy) if ((await this.exec('ipset', d.split(' '))).code === 0) report.setsDestroyed++;
    this.opts.log?.info({ chains: report.chainsWritten, sets: report.setsWritten, destroyed: report.setsDestroyed, backend }, 'ACL applied');
    return report;
  }

  /** Remove everything Tern installed in this namespace (hooks, chains, sets). */
  async remove(): Promise<void> {
    const empty: CompiledRuleset = { v4: { family: 4, chains: [], hooks: [], sets: [] }, v6: { family: 6, chains: [], hooks: [], sets: [] } };
    const backend = await this.resolveBackend();
    await withNodeLock(this.lockFile, async () => {
      this.opts.memory?.save(undefined);
      for (const fam of [4, 6] as const) {
        const cur = parseSave(await this.save(fam));
        const del = [...cur.hooks].flatMap(([chain, h]) => h.specs.map((s) => `-D ${chain} ${s}`));
        const plan = planIptables(empty[fam === 4 ? 'v4' : 'v6'], cur);
        const text = plan ? plan.replace('*filter\n', `*filter\n${del.join('\n')}${del.length ? '\n' : ''}`) : del.length ? ['*filter', ...del, 'COMMIT', ''].join('\n') : '';
        if (text) await this.must(tool(backend, fam, 'restore'), ['--noflush', '--wait'], text);
      }
      const names = [...parseIpsetSave(await this.must('ipset', ['save'])).keys()];
      if (names.length && (await this.exec('ipset', ['restore'], names.map((n) => `destroy ${n}`).join('\n') + '\n')).code !== 0) for (const n of names) await this.exec('ipset', ['destroy', n]);
    });
  }
}

/** Restore input that brings Tern's chains and hooks back to an earlier iptables-save text. */
export function rollbackText(before: string, now: string): string {
  const tern = (text: string) => {
    const chains = new Map<string, string[]>();
    const hooks: string[] = [];
    let inFilter = false;
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) inFilter = line === '*filter';
      if (!inFilter) continue;
      if (line.startsWith(':') && isTernChain(line.slice(1).split(' ')[0])) chains.set(line.slice(1).split(' ')[0], []);
      else if (line.startsWith('-A ')) {
        const chain = line.slice(3, line.indexOf(' ', 3));
        if (isTernChain(chain)) chains.get(chain)?.push(line);
        else if (line.includes(HOOK_COMMENT)) hooks.push(line);
      }
    }
    return { chains, hooks };
  };
  const b = tern(before);
  const n = tern(now);
  const out = ['*filter'];
  for (const h of n.hooks) if (!b.hooks.includes(h)) out.push(h.replace(/^-A /, '-D '));
  for (const name of new Set([...b.chains.keys(), ...n.chains.keys()])) out.push(`:${name} - [0:0]`);
  for (const rules of b.chains.values()) out.push(...rules);
  for (const h of b.hooks) if (!n.hooks.includes(h)) out.push(h.replace(/^-A (\S+) /, '-I $1 1 '));
  for (const name of n.chains.keys()) if (!b.chains.has(name)) out.push(`-X ${name}`);
  out.push('COMMIT', '');
  return out.join('\n');
}

/**
 * The lock file serialising the ACL appliers of one namespace (the caller's
 * when no path is given), named by the namespace's inode: one namespace has
 * one lock whether it is named by path or entered, and node namespaces on one
 * host never wait for each other.
 */
export function defaultLock(netnsPath?: string): string {
  return path.join('/run/tern', `acl-${fs.statSync(netnsPath ?? '/proc/self/ns/net').ino}.lock`);
}


