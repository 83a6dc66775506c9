/** ACL engine: policy files -> model -> compiled chains and ipsets -> applied in a node namespace. */
export * from './model';
export { parseSelector, matchSelector, formatSelector, type Selector } from './selector';
export { PolicyFileError, formatProblem, type FileProblem } from './errors';
export { parsePolicyText, type Resource } from './parse';
export { loadPolicyPaths, policyFiles } from './load';
export { PolicyState, toInput, type Update } from './state';
export { compileRuleset, CompileMemo, CHAIN, type CompiledRuleset, type FamilyRuleset, type ChainSpec, type IpSetSpec } from './compile';
export { renderIptables, renderIpsets } from './render';
export { Applier, detectBackend, type Backend, type ApplyReport } from './applier';
export { simulate, type SimPacket, type SimResult } from './simulate';
export { parseCounters, rulesTraversed, hookPackets, type CountedRule } from './counters';
export { explainPacket, findEndpoint, parsePortProto, type Explanation, type Packet } from './explain';
export { ACL_PREFIX, POLICY_DIR_SOURCE, resourceKey, storedResources, writeResources, endpointResource, aclInUse, planPolicyDir, type StoredResource } from './store';
export { syncFromStore, kernelHasRules } from './kernel-sync';
export { IncrementalAcl, type IncrementalPlan } from './incremental';
