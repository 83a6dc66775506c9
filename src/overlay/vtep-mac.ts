import { createHash } from 'node:crypto';

/**
 * A VTEP MAC derived only from the node name, so it survives restarts and
 * other nodes can trust what the datastore says. Locally administered,
 * unicast (IEEE 802 U/L and I/G bits).
 */
export function vtepMacFor(nodeName: string): string {
  const h = createHash('sha256').update(`tern-vtep:${nodeName}`).digest();
  const b = Buffer.from(h.subarray(0, 6));
  b[0] = (b[0] & 0xfe) | 0x02;
  return formatMac(b);
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
