/**
 * Applier: brings one network namespace's iptables and ipsets to a compiled
 * ruleset with one diff. Reads what exists (iptables-save, ipset save), writes
 * only the Tern chains that differ plus one jump per hook chain with
 * `iptables-restore --noflush --wait` (one COMMIT per table, atomic), and
 * updates sets by building a temporary copy and swapping it in. If the
 * iptables write fails, swapped sets are swapped back and new ones destroyed,
 * so the previous complete ruleset stays in force.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TernError } from '../lib/errors';
import { CHAIN_PREFIX } from '../lib/constants';
import type { Logger } from '../lib/log';
import { withLock } from '../lib/lock';
import type { CompiledRuleset, FamilyRuleset, IpSetSpec } from './compile';
import { chainLines, createLine, hookSpec, HOOK_COMMENT, isTernChain } from './render';

export type Backend = 'nft' | 'legacy';

export interface Exec {
  (cmd: string, args: string[], input?: string): { code: number; stdout: string; stderr: string };
}

/** Run commands inside a namespace (by path) or, without one, where this process runs. */
export function netnsExec(netnsPath?: string): Exec {
  return (cmd, args, input) => {
    const argv = netnsPath ? ['nsenter', `--net=${netnsPath}`, '--', cmd, ...args] : [cmd, ...args];
    const r = spawnSync(argv[0], argv.slice(1), { input, encoding: 'utf8', maxBuffer: 256 << 20, timeout: 120_000 });
    if (r.error) throw new TernError('IO_FAILURE', `${cmd}: ${r.error.message}`, { cause: r.error });
    return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
}

function tool(backend: Backend, fam: 4 | 6, what: 'save' | 'restore'): string {
  return `${fam === 4 ? 'iptables' : 'ip6tables'}-${backend}-${what}`;
}

/**
 * Which iptables the host uses: whichever backend already holds more rules
 * (Tern's own, then anyone's); nf_tables when both are empty, as on current distros.
 */
export function detectBackend(exec: Exec): Backend {
  const count = (b: Backend) => {
    let tern = 0;
    let all = 0;
    for (const fam of [4, 6] as const) {
      const r = exec(tool(b, fam, 'save'), []);
      if (r.code !== 0) continue;
      for (const l of r.stdout.split('\n')) {
        if (!l.startsWith('-A ')) continue;
        all++;
        if (l.includes(HOOK_COMMENT)) tern++;
      }
    }
    return { tern, all };
  };
  const nft = count('nft');
  const legacy = count('legacy');
  if (legacy.tern !== nft.tern) return legacy.tern > nft.tern ? 'legacy' : 'nft';
  return legacy.all > nft.all ? 'legacy' : 'nft';
}

interface KernelTable {
  /** Tern chain -> rule hashes in order ('?' for a rule without our comment). */
  chains: Map<string, string[]>;
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
    const lines = chainLines(c);
    const have = current.chains.get(c.name);
    if (have && have.length === lines.length && have.every((h, i) => h === lines[i].hash)) continue;
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

export interface ApplyOptions {
  /** Namespace to program (a /run/netns path). Without it, the current one. */
  netnsPath?: string;
  backend?: Backend;
  log?: Logger;
  /** Lock file serialising concurrent appliers on one namespace. */
  lockFile?: string;
}

export interface ApplyReport {
  backend: Backend;
  chainsWritten: number;
  setsWritten: number;
  setsDestroyed: number;
  restoreText: { v4: string; v6: string };
}

const TMP_SUFFIX = '-t';

export class Applier {
  private readonly exec: Exec;
  readonly backend: Backend;

  constructor(private readonly opts: ApplyOptions = {}) {
    this.exec = netnsExec(opts.netnsPath);
    this.backend = opts.backend ?? detectBackend(this.exec);
  }

  private must(cmd: string, args: string[], input?: string): string {
    const r = this.exec(cmd, args, input);
    if (r.code !== 0) throw new TernError('IO_FAILURE', `${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    return r.stdout;
  }

  save(fam: 4 | 6): string {
    return this.must(tool(this.backend, fam, 'save'), ['-t', 'filter']);
  }

  /** The lock file serialising the appliers of this namespace. */
  get lockFile(): string {
    return this.opts.lockFile ?? defaultLock(this.opts.netnsPath);
  }

  apply(rs: CompiledRuleset): ApplyReport {
    return withLock(this.lockFile, () => this.applyHoldingLock(rs));
  }

  /** Apply when the caller already holds `lockFile` (it read its input under the lock too). */
  applyHoldingLock(rs: CompiledRuleset): ApplyReport {
    const sets = parseIpsetSave(this.must('ipset', ['save']));
    const report: ApplyReport = { backend: this.backend, chainsWritten: 0, setsWritten: 0, setsDestroyed: 0, restoreText: { v4: '', v6: '' } };
    // 1. Sets: create missing ones, swap in new contents of changed ones.
    const created: string[] = [];
    const swapped: string[] = [];
    const lines: string[] = [];
    for (const fam of [rs.v4, rs.v6]) {
      for (const s of fam.sets) {
        const have = sets.get(s.name);
        const want = s.members.map((m) => normMember(s.type, m));
        if (have && have.type === s.type && have.members.size === want.length && want.every((m) => have.members.has(m))) continue;
        report.setsWritten++;
        if (!have) {
          created.push(s.name);
          lines.push(createLine(s), ...s.members.map((m) => `add ${s.name} ${m}`));
        } else {
          const tmp = s.name + TMP_SUFFIX;
          swapped.push(s.name);
          lines.push(createLine(s, tmp), `flush ${tmp}`, ...s.members.map((m) => `add ${tmp} ${m}`), `swap ${tmp} ${s.name}`);
        }
      }
    }
    if (lines.length) this.must('ipset', ['restore', '-exist'], lines.join('\n') + '\n');
    // 2. Rules, one atomic restore per family; both are checked before either is written,
    // and v4 is put back from its saved text should the v6 write still fail.
    const written: { fam: 4 | 6; before: string }[] = [];
    try {
      const plans = [rs.v4, rs.v6].map((fam) => {
        const before = this.save(fam.family);
        return { fam: fam.family, before, plan: planIptables(fam, parseSave(before)) };
      });
      report.restoreText = { v4: plans[0].plan, v6: plans[1].plan };
      for (const p of plans) if (p.plan) this.must(tool(this.backend, p.fam, 'restore'), ['--noflush', '--wait', '--test'], p.plan);
      for (const p of plans) {
        if (!p.plan) continue;
        report.chainsWritten += (p.plan.match(/^:/gm) ?? []).length;
        this.must(tool(this.backend, p.fam, 'restore'), ['--noflush', '--wait'], p.plan);
        written.push({ fam: p.fam, before: p.before });
      }
    } catch (e) {
      for (const w of written) {
        const back = rollbackText(w.before, this.save(w.fam));
        if (back) this.exec(tool(this.backend, w.fam, 'restore'), ['--noflush', '--wait'], back);
      }
      // Put the previous sets back, then drop the ones this apply created.
      const undo = [...swapped.map((n) => `swap ${n}${TMP_SUFFIX} ${n}`), ...swapped.map((n) => `destroy ${n}${TMP_SUFFIX}`), ...created.map((n) => `destroy ${n}`)];
      if (undo.length) this.exec('ipset', ['restore', '-exist'], undo.join('\n') + '\n');
      this.opts.log?.warn({ err: e }, 'ACL apply failed; previous ruleset kept');
      throw e;
    }
    // 3. Drop temporaries and sets no rule references any more.
    const wanted = new Set([...rs.v4.sets, ...rs.v6.sets].map((s) => s.name));
    const drop = [...swapped.map((n) => n + TMP_SUFFIX), ...[...sets.keys()].filter((n) => !wanted.has(n) && !swapped.includes(n.replace(/-t$/, '')))];
    // One batch; should a set still be in use (someone else's rule), fall back to one at a time.
    if (drop.length && this.exec('ipset', ['restore'], drop.map((n) => `destroy ${n}`).join('\n') + '\n').code === 0) report.setsDestroyed += drop.length;
    else for (const n of drop) if (this.exec('ipset', ['destroy', n]).code === 0) report.setsDestroyed++;
    this.opts.log?.info({ chains: report.chainsWritten, sets: report.setsWritten, destroyed: report.setsDestroyed, backend: this.backend }, 'ACL applied');
    return report;
  }

  /** Remove everything Tern installed in this namespace (hooks, chains, sets). */
  remove(): void {
    const empty: CompiledRuleset = { v4: { family: 4, chains: [], hooks: [], sets: [] }, v6: { family: 6, chains: [], hooks: [], sets: [] } };
    withLock(this.lockFile, () => {
      for (const fam of [4, 6] as const) {
        const cur = parseSave(this.save(fam));
        const del = [...cur.hooks].flatMap(([chain, h]) => h.specs.map((s) => `-D ${chain} ${s}`));
        const plan = planIptables(empty[fam === 4 ? 'v4' : 'v6'], cur);
        const text = plan ? plan.replace('*filter\n', `*filter\n${del.join('\n')}${del.length ? '\n' : ''}`) : del.length ? ['*filter', ...del, 'COMMIT', ''].join('\n') : '';
        if (text) this.must(tool(this.backend, fam, 'restore'), ['--noflush', '--wait'], text);
      }
      const names = [...parseIpsetSave(this.must('ipset', ['save'])).keys()];
      if (names.length && this.exec('ipset', ['restore'], names.map((n) => `destroy ${n}`).join('\n') + '\n').code !== 0) for (const n of names) this.exec('ipset', ['destroy', n]);
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

/** The lock file serialising the ACL appliers of one namespace (the caller's when no path is given). */
export function defaultLock(netnsPath?: string): string {
  return path.join('/run/tern', `acl-${netnsPath ? path.basename(netnsPath) : 'self'}.lock`);
}


