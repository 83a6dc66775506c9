/** Overlay: VXLAN (and CrossSubnet) reconciler, VLAN attachment, kernel feature probes. */
export * from './types';
export { vtepMacFor } from './vtep-mac';
export { selectPath, type PathKind } from './select';
export { planOverlay, vxlanOverhead, checksumOffloadBroken, VTEP_NAME, DEFAULT_VNI, DEFAULT_VXLAN_PORT } from './plan';
export { diffOverlay, type ObservedOverlay, type OverlayOp } from './diff';
export { VxlanReconciler, type VxlanReconcilerOptions, type ReconcileResult } from './vxlan-apply';
export { VXLAN_GUARD_CHAIN, guardRestoreText } from './vxlan-guard';
export { attachVlanPod, detachVlanPod, MISSING_8021Q, type AttachVlanPodRequest, type AttachVlanPodResult, type DetachVlanPodRequest } from './vlan';
export { vlanNames, checkVlanAddressing, VLAN_SUBIF_ALIAS, type VlanPool, type VlanAttachment, type VlanNames } from './vlan-plan';
export { gatherKernelFacts, probeVlan8021q, type KernelFacts, type Probe } from './kernel-features';
export { evaluateDoctor, renderDoctor, type DoctorReport, type Check, type ModeVerdict, type Severity } from './doctor-report';
