/**
 * What one applier learned about a namespace's rules, kept for the next
 * process: a standalone CNI ADD or DEL is a new process each time, and
 * without this it would detect the backend (four iptables-save runs) and read
 * both families' rules (two more) on every call. The daemon keeps the same
 * knowledge in memory (Applier.verified).
 *
 * Trusted only on the nft backend, and only while the namespace's nf_tables
 * generation is the one Tern's last own commit left: any other commit moves
 * it. The file is keyed by the namespace's device and inode; an inode is
 * reused once its namespace is gone, so the record also names the random hash
 * seed (initval) of the endpoint gate sets it saw, which a namespace that has
 * the same inode but was populated anew cannot have. It also carries a digest
 * of the rules as this build renders them, so a file written by a build that
 * renders them differently is not trusted. Anything missing, unreadable or
 * different: the applier reads the kernel as if there were no file.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CompiledRuleset, FamilyRuleset } from './compile';
import { chainLines, hookSpec } from './render';

const FORMAT = 1;

export interface KnownRules {
  /** nf_tables generation right after Tern's last commit (or read) that left `rs` in the kernel. */
  gen: number;
  /** Rules and hooks (sets are not kept: the applier reads them every time, ipset has no generation). */
  rs: CompiledRuleset;
  /** Gate set name -> initval, as listed when the record was written. */
  gates: Record<string, number>;
}

/** Where the knowledge is kept between processes (a file) or not at all. */
export interface RulesMemory {
  load(): KnownRules | undefined;
  /** Record, or with undefined forget (the kernel's state is no longer known). */
  save(k: KnownRules | undefined): void;
}

/** The rules as this build would write them (iptables lines), hashed. */
export function renderDigest(rs: CompiledRuleset): string {
  const h = crypto.createHash('sha256');
  for (const fam of [rs.v4, rs.v6]) {
    for (const hk of fam.hooks) h.update(`${hk.chain} ${hookSpec(hk)}\n`);
    for (const c of fam.chains) {
      h.update(`:${c.name}\n`);
      for (const l of chainLines(c)) h.update(`${l.line}\n`);
    }
  }
  return h.digest('hex');
}

const bare = (f: FamilyRuleset): FamilyRuleset => ({ family: f.family, chains: f.chains, hooks: f.hooks, sets: [] });

/** The record as written (pure). */
export function encodeKnown(k: KnownRules): string {
  const rs = { v4: bare(k.rs.v4), v6: bare(k.rs.v6) };
  return JSON.stringify({ format: FORMAT, gen: k.gen, gates: k.gates, digest: renderDigest(rs), rs });
}

const isFamily = (f: unknown, fam: 4 | 6): f is FamilyRuleset => {
  const x = f as FamilyRuleset;
  return !!x && x.family === fam && Array.isArray(x.chains) && Array.isArray(x.hooks) && x.chains.every((c) => typeof c?.name === 'string' && Array.isArray(c.rules) && c.rules.every((r) => typeof r === 'string')) && x.hooks.every((h) => typeof h?.chain === 'string' && typeof h.target === 'string');
};

/** The record read back (pure), or undefined for anything but a well-formed one of this format whose rules this build renders alike. */
export function decodeKnown(text: string): KnownRules | undefined {
  let j: { format?: unknown; gen?: unknown; gates?: unknown; digest?: unknown; rs?: { v4?: unknown; v6?: unknown } };
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!j || j.format !== FORMAT || typeof j.gen !== 'number' || !Number.isInteger(j.gen) || typeof j.digest !== 'string') return undefined;
  const gates = j.gates as Record<string, unknown>;
  if (!gates || typeof gates !== 'object' || !Object.keys(gates).length || !Object.values(gates).every((v) => typeof v === 'number')) return undefined;
  if (!j.rs || !isFamily(j.rs.v4, 4) || !isFamily(j.rs.v6, 6)) return undefined;
  const rs: CompiledRuleset = { v4: bare(j.rs.v4), v6: bare(j.rs.v6) };
  try {
    if (renderDigest(rs) !== j.digest) return undefined;
  } catch {
    return undefined;
  }
  return { gen: j.gen, rs, gates: gates as Record<string, number> };
}

/** The record's file for a namespace (the caller's without a path), in `dir`. */
export function knownRulesFile(dir: string, netnsPath?: string): string {
  const st = fs.statSync(netnsPath ?? '/proc/self/ns/net');
  return path.join(dir, `acl-${st.dev}-${st.ino}.known.json`);
}

/**
 * A record in a root-only file. Written under the namespace's ACL lock (the
 * applier's caller holds it), atomically: a new file renamed over the old, so
 * a reader sees a whole record or none. Only a shortcut: a record that cannot
 * be written never fails the apply (the rules are in the kernel by then), it
 * is removed instead, and at worst the next process reads the rules.
 */
export function fileMemory(file: string): RulesMemory {
  const forget = () => {
    try {
      fs.rmSync(file, { force: true });
    } catch {
      /* nothing there to mislead, or nothing we can do */
    }
  };
  return {
    load() {
      try {
        return decodeKnown(fs.readFileSync(file, 'utf8'));
      } catch {
        return undefined;
      }
    },
    save(k) {
      if (!k) return forget();
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        fs.writeFileSync(tmp, encodeKnown(k), { mode: 0o600 });
        fs.renameSync(tmp, file);
      } catch {
        forget();
        try {
          fs.rmSync(tmp, { force: true });
        } catch {
          /* as above */
        }
      }
    },
  };
}
