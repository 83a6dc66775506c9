export type { Ipam, AllocateRequest, AllocatedIp, Allocation, AllocationKey, AllocationAttrs } from './types';
export { handleId } from './types';
export { BlockIpam, type BlockIpamOptions } from './block-ipam';
export { resolveNodeName, NODENAME_FILE } from './nodename';
export * from './model';
export * as allocator from './allocator';
export * from './gc';
