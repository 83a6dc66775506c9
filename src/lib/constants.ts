/** Ownership marks on kernel objects (STYLE: mark what you own, never touch what you do not). */

/**
 * rtm_protocol marks, one per owner of kernel routes, as BIRD gives each of its
 * protocols its own (RTPROT_BIRD=12). 84 to 87 are unassigned in rt_protos.
 * Each owner lists and sweeps only routes carrying its own mark.
 */
/** Pod host routes (CNI plugin) and the routes inside the container. */
export const RTPROT_POD = 84;
/** One blackhole per IPAM block this node owns (block route reconciler). */
export const RTPROT_BLOCK = 85;
/** Routes learned over BGP (the speaker's kernel FIB). */
export const RTPROT_BGP = 86;
/** VXLAN overlay routes: onlink through the VTEP, and CrossSubnet's direct routes. */
export const RTPROT_VXLAN = 87;
/**
 * Before one mark per owner every Tern route carried 84. A daemon started on
 * routes left by such a version adopts its own by shape (blackholes: block
 * routes; routes with a next hop: BGP's or, on a VXLAN node, the overlay's),
 * rewriting them in place (NLM_F_REPLACE), so no packet sees a gap.
 */
export const RTPROT_LEGACY = 84;
/** Every link Tern creates starts with this. */
export const LINK_PREFIX = 'tern';
/** Host-side veth MAC (the container sees this as its gateway's MAC). */
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
/** Link-local IPv4 gateway answered by proxy ARP on the host veth. */
export const GATEWAY_V4 = '169.254.1.1';
/** IPv6 gateway: the host veth's EUI-64 link-local address derived from ee:ee:ee:ee:ee:ee. */
export const GATEWAY_V6 = 'fe80::ecee:eeff:feee:eeee';
/** Chain and ipset name prefix for the ACL engine. */
export const CHAIN_PREFIX = 'tern-';
