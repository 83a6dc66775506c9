/**
 * The IPAM seam between the CNI plugin and the allocator that backs it
 * (BlockIpam).
 */
import type { TxnOp } from '../datastore/types';
import type { AllocationAttrs, IPPool } from './model';

export type { AllocationAttrs };

/** Who an allocation belongs to. The handle is `<network>.<containerID>.<ifname>`. */
export interface AllocationKey {
  network: string;
  containerId: string;
  ifname: string;
}

export function handleId(k: AllocationKey): string {
  return `${k.network}.${k.containerId}.${k.ifname}`;
}

export interface AllocateRequest {
  key: AllocationKey;
  /** Pool CIDRs from the config, v4 and/or v6; one address per family is handed out. */
  pools: string[];
  /** Specific addresses asked for (CNI_ARGS IP= or the `ips` capability), without prefix length. */
  requested?: string[];
  attrs?: AllocationAttrs;
  /**
   * Records that belong with a new allocation (CNI ADD: the pod's endpoint
   * record), given its addresses: unguarded puts and deletes, written in the
   * allocation's own transaction, so the two exist together or not at all.
   */
  alongside?: (ips: AllocatedIp[]) => TxnOp[];
}

export interface AllocatedIp {
  /** Address without prefix length. */
  address: string;
  family: 4 | 6;
  /** The pool it came from. */
  pool: string;
}

export interface Allocation {
  key: AllocationKey;
  ips: AllocatedIp[];
  attrs?: AllocationAttrs;
}

export interface Ipam {
  /** The node this allocator claims blocks for. */
  readonly node: string;
  /** Idempotent: a repeated ADD of the same key returns the same addresses. */
  allocate(req: AllocateRequest): Promise<AllocatedIp[]>;
  /**
   * allocate, saying whether this call created the allocation (and so wrote
   * `req.alongside`'s records with it) or found it made already.
   */
  allocateNew(req: AllocateRequest): Promise<{ ips: AllocatedIp[]; created: boolean }>;
  /**
   * Idempotent: releasing an unknown key is a no-op. `alongside` (unguarded
   * deletes and puts) is written in the release's transaction, also when
   * there is no allocation to release.
   */
  release(key: AllocationKey, alongside?: TxnOp[]): Promise<void>;
  get(key: AllocationKey): Promise<Allocation | undefined>;
  list(network?: string): Promise<Allocation[]>;
  /** Whether an allocation could be made now (CNI STATUS). Throws a TernError otherwise. */
  status(pools: string[]): Promise<void>;
  /** The record of a pool this allocator has loaded (after allocate), without a datastore read. */
  poolRecord(cidr: string): IPPool | undefined;
  close(): Promise<void>;
}
