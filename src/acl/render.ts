/**
 * Text forms of a compiled ruleset: `iptables-restore` input (with a hash
 * comment on every rule, chained like felix does so a rule's hash also pins
 * its position) and `ipset restore` input.
 */
import { CHAIN_PREFIX } from '../lib/constants';
import { shortHash, type ChainSpec, type FamilyRuleset, type Hook, type IpSetSpec } from './compile';

export const COMMENT_PREFIX = 'tern:';
export const HOOK_COMMENT = `${COMMENT_PREFIX}hook`;

/** The rule lines of a chain as `-A` lines, each with its hash. */
export function chainLines(c: ChainSpec): { hash: string; line: string }[] {
  let prev = '';
  return c.rules.map((body) => {
    const hash = shortHash(`${c.name}|${prev}|${body}`);
    prev = hash;
    return { hash, line: `-A ${c.name} -m comment --comment "${COMMENT_PREFIX}${hash}" ${body}` };
  });
}

export function hookSpec(h: Hook): string {
  return `${h.match ? `${h.match} ` : ''}-m comment --comment "${HOOK_COMMENT}" -j ${h.target}`;
}

/** A complete filter table section (what `policy show` prints; hooks as inserts). */
export function renderIptables(rs: FamilyRuleset): string {
  const out = ['*filter'];
  for (const c of rs.chains) out.push(`:${c.name} - [0:0]`);
  for (const h of rs.hooks) out.push(`-I ${h.chain} 1 ${hookSpec(h)}`);
  for (const c of rs.chains) for (const l of chainLines(c)) out.push(l.line);
  out.push('COMMIT', '');
  return out.join('\n');
}

export function createLine(s: IpSetSpec, name = s.name): string {
  return `create ${name} ${s.type} family ${s.family === 4 ? 'inet' : 'inet6'} hashsize 1024 maxelem 1048576`;
}

export function renderIpsets(rs: FamilyRuleset): string {
  const out: string[] = [];
  for (const s of rs.sets) {
    out.push(createLine(s));
    for (const m of s.members) out.push(`add ${s.name} ${m}`);
  }
  return out.join('\n') + '\n';
}

export function isTernChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}
