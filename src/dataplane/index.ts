export { NetnsHandle, netnsExists, loadAddon, bgpSocketOptions } from './netns';
export { Rtnl, flat, macToBytes, bytesToMac, errnoName } from './rtnl';
export type { LinkInfo, AddressInfo, RouteSpec, RouteInfo } from './rtnl';
export { writeSysctl, readSysctl } from './sysctl';
export type { SysctlSetting } from './sysctl';
export { planEndpoint, hostVethName, endpointAlias, parseEndpointAlias } from './endpoint-plan';
export type { EndpointPlan, EndpointInput, PlannedRoute } from './endpoint-plan';
export { alignVethGroups, applyEndpoint, removeEndpoint } from './endpoint';
