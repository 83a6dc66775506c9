/**
 * The nf_tables ruleset generation of a namespace (NFT_MSG_GETGEN over
 * NETLINK_NETFILTER). The kernel bumps it on every committed change to any
 * nf_tables table of the namespace, including the ones iptables-nft writes;
 * reading the ruleset (iptables-nft-save, -L) or a `--test` restore leaves it
 * alone. An unchanged generation therefore proves that no rule changed, which
 * lets a resync skip `iptables-nft-save` (most of its cost at thousands of
 * rules) when nothing happened since it last read the rules.
 */
import { createNetlink } from 'netlink/dist/netlink';
import { TernError, messageOf } from '../lib/errors';
import { createIn } from './netns';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;

/** The generation in a GETGEN reply (nfgenmsg, then attributes), or undefined if it has none. */
export function parseGenReply(data: Buffer): number | undefined {
  for (let off = 4; off + 4 <= data.length; ) {
    const len = data.readUInt16LE(off);
    const type = data.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > data.length) break;
    if (type === NFTA_GEN_ID && len >= 8) return data.readUInt32BE(off + 4);
    off += (len + 3) & ~3;
  }
  return undefined;
}

/** The namespace's generation (`netnsPath`; default: this process's). */
export async function nftGeneration(netnsPath?: string): Promise<number> {
  const sock = createIn(netnsPath, () => createNetlink(NETLINK_NETFILTER));
  try {
    // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0.
    const [msgs] = await sock.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, Buffer.alloc(4), { timeout: 5_000 });
    const gen = msgs.length ? parseGenReply(msgs[0].data) : undefined;
    if (gen === undefined) throw new TernError('IO_FAILURE', 'nf_tables generation: no NFTA_GEN_ID in the reply');
    return gen;
  } catch (e) {
    throw e instanceof TernError ? e : new TernError('IO_FAILURE', `nf_tables generation: ${messageOf(e)}`, { cause: e });
  } finally {
    sock.socket.close();
  }
}
