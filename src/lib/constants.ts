/** Ownership marks on kernel objects (STYLE: mark what you own, never touch what you do not). */

/** rtm_protocol on every route Tern installs (BIRD uses RTPROT_BIRD=12; 84 is unassigned in rt_protos). */
export const RTPROT_TERN = 84;
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
