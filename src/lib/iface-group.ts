/**
 * The device group (IFLA_GROUP) of a pod's host veth, derived from its name.
 * The ACL dispatch finds a veth's chains by testing these bits one at a time
 * (xt_devgroup): one rule per level of a binary tree, where a tree over the
 * name's hex characters scans up to 16 rules per level. The high byte marks
 * the group as Tern's; a veth without it (made by an older version, or changed
 * by hand) still finds its chains through the name tree behind.
 */
import * as crypto from 'node:crypto';

export const IFACE_GROUP_TAG = 0x7e000000;
/** Bits of the group that come from the name's hash (below the tag). */
export const IFACE_GROUP_BITS = 24;

export function ifaceGroup(name: string): number {
  const h = crypto.createHash('sha256').update(name).digest().readUIntBE(0, 3);
  return IFACE_GROUP_TAG | h;
}
