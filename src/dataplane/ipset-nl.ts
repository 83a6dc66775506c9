/**
 * ipset members over netlink (NETLINK_NETFILTER, subsystem IPSET), without
 * spawning `ipset`: a process start costs ~10 ms on these machines, which was
 * most of a CNI ADD's ACL step, and one netlink request costs microseconds.
 * Member changes and the listing of sets go this way (the ACL applier);
 * sets are created, swapped and destroyed by `ipset restore`.
 */
import { createNetlink } from 'netlink/dist/netlink';
import { TernError } from '../lib/errors';
import { decodeListMessage, encodeListRequest, encodeMemberOp, explainIpsetErrno, listMessageType, messageType, type ListedSet, type MemberOp } from './ipset-codec';
import { createIn } from './netns';

const NETLINK_NETFILTER = 12;
const NLM_F_DUMP = 0x300;

/**
 * Apply the operations in order, each acknowledged before the next is sent:
 * like `ipset restore`, the first failure stops the batch (so a gate entry
 * listed after a member that failed is never opened) and is thrown.
 * `netnsPath`: the namespace whose sets to change (default: this process's).
 */
export async function applyMemberOps(ops: MemberOp[], netnsPath?: string): Promise<void> {
  if (!ops.length) return;
  const payloads = ops.map(encodeMemberOp); // all checked before anything is sent
  const sock = createIn(netnsPath, () => createNetlink(NETLINK_NETFILTER));
  try {
    for (let i = 0; i < ops.length; i++) {
      try {
        await sock.request(messageType(ops[i].op), payloads[i], { timeout: 5_000 });
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        // The netlink package names errnos Node knows ("ENOENT"); ipset's own (4096 and up) arrive as "Unknown system error -4106".
        const errno = /Request rejected: (?:Unknown system error -)?(\w+)/.exec(msg)?.[1] ?? msg;
        throw new TernError('IO_FAILURE', `ipset ${ops[i].op} ${ops[i].set} ${ops[i].member}: ${explainIpsetErrno(errno)}`, { cause: e, details: errno });
      }
    }
  } finally {
    sock.socket.close();
  }
}

/**
 * Every set whose name `want` accepts, with its members as `ipset save` prints
 * them, from one netlink dump (no process). Throws if the kernel's answer
 * holds anything Tern does not write; callers then read `ipset save`.
 */
export async function listSets(want: (name: string) => boolean, netnsPath?: string): Promise<Map<string, ListedSet>> {
  const sock = createIn(netnsPath, () => createNetlink(NETLINK_NETFILTER));
  try {
    const [msgs] = await sock.request(listMessageType(), encodeListRequest(), { flags: NLM_F_DUMP, timeout: 5_000 });
    const out = new Map<string, ListedSet>();
    for (const m of msgs) decodeListMessage(m.data, out, want);
    return out;
  } catch (e) {
    throw e instanceof TernError ? e : new TernError('IO_FAILURE', `ipset list: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    sock.socket.close();
  }
}
