/**
 * The one readiness rule. `/readyz` answers with it and `ternctl status`
 * prints it, so the two can never disagree about a node.
 */
import type { PeerView } from '../bgp-speaker';
import type { AclStatus } from './acl-sync';
import type { OverlayStatus } from './vxlan';
import type { LoopStatus } from '../lib/reconcile-loop';

export interface DaemonStatus {
  node: string;
  ready: boolean;
  datastore: { type: string; where: string; reachable: boolean };
  blocks: string[];
  bgp?: { asn: number; routerId: string; peers: PeerView[] };
  acl?: AclStatus;
  overlay?: OverlayStatus;
  /** The daemon's unix sockets: the CNI fast path and, with BGP, the control socket `ternctl bgp` talks to. */
  sockets?: { cni: string; control?: string };
  /** Every reconcile loop: runs, failures, last error, next run. */
  reconcilers?: LoopStatus[];
  /** What keeps the node from being ready (empty: ready), decided by notReady(). */
  notReady?: string[];
}

/**
 * What keeps a node from being ready (empty: ready): started, datastore
 * reachable, ACL in sync, policy directory accepted, overlay programmed,
 * every BGP session Established.
 */
export function notReady(st: DaemonStatus): string[] {
  const why: string[] = [];
  if (!st.ready) why.push('starting');
  if (!st.datastore.reachable) why.push('datastore unreachable');
  if (st.acl?.lastError) why.push(`ACL sync failed: ${st.acl.lastError}`);
  if (st.acl?.policyDir.lastError) why.push(`policy directory rejected: ${st.acl.policyDir.lastError}`);
  if (st.overlay?.lastError) why.push(`overlay failed: ${st.overlay.lastError}`);
  for (const p of st.bgp?.peers ?? []) if (p.state !== 'Established') why.push(`BGP ${p.address} ${p.state}`);
  return why;
}
