/**
 * The node registry: each daemon publishes its name, addresses and ASN under
 * /tern/nodes/v1/<name>; peers, overlays and `ternctl node list` read it.
 */
import type { Store } from '../datastore/types';
import { TernError } from '../lib/errors';
import { Rtnl } from '../dataplane';

export const NODES = '/tern/nodes/v1/';

export interface NodeRecord {
  name: string;
  /** Underlay addresses with prefix length, IPv4 first. */
  addresses: string[];
  asn?: number;
  labels: Record<string, string>;
  /** ISO time of the last registration. */
  updated: string;
  /** Published when the node runs the VXLAN overlay. */
  vtep?: VtepRecord;
}

export interface VtepRecord {
  mac: string;
  underlayIp: string;
  /** From IPAM: the VTEP's own address, the next hop other nodes route this node's blocks to. */
  tunnelIp: string;
  /** Underlay subnet, for crosssubnet mode. */
  subnet: string;
}

export const nodeKey = (name: string): string => `${NODES}${name}`;

/** Create or refresh this node's record (last writer wins: a node owns its own key). */
export async function registerNode(store: Store, rec: NodeRecord): Promise<void> {
  const value = JSON.stringify(rec);
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await store.get(nodeKey(rec.name));
    const r = await store.txn([cur ? { op: 'update', key: cur.key, value, revision: cur.modRevision } : { op: 'create', key: nodeKey(rec.name), value }]);
    if (r.ok) return;
  }
  throw new TernError('TRY_AGAIN_LATER', `could not register node ${rec.name}: the record kept changing`);
}

export async function listNodes(store: Store): Promise<NodeRecord[]> {
  const { items } = await store.list(NODES);
  return items.map((kv) => JSON.parse(kv.value) as NodeRecord);
}

export async function removeNode(store: Store, name: string): Promise<void> {
  await store.delete(nodeKey(name));
}

/** Global addresses of the device behind the default route (the uplink), in the calling namespace. */
export async function detectAddresses(): Promise<string[]> {
  const rt = Rtnl.open();
  try {
    const out: string[] = [];
    for (const family of [4, 6] as const) {
      const def = (await rt.listRoutes({ family, table: 254 })).find((r) => r.dst === (family === 4 ? '0.0.0.0/0' : '::/0'));
      const dev = def?.dev ?? def?.multipath?.[0]?.dev;
      if (!dev) continue;
      for (const a of await rt.listAddresses(dev)) {
        if (a.family === family && !a.address.startsWith('fe80:')) out.push(`${a.address}/${a.prefixLen}`);
      }
    }
    return out;
  } finally {
    rt.close();
  }
}
