/**
 * Policy model: every accepted file kind (Kubernetes NetworkPolicy, Tern/Calico
 * NetworkPolicy and GlobalNetworkPolicy, Tier, Tenant, Namespace, settings,
 * WorkloadEndpoint) is normalised into these plain records before compiling.
 */
import type { Selector } from './selector';

export type Action = 'Allow' | 'Deny' | 'Pass' | 'Log';
export type Direction = 'ingress' | 'egress';
export type Family = 4 | 6;

/** IANA protocol numbers (RFC 5237 registry). */
export const Proto = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const;

/** A port: a numeric range or a name resolved on the destination endpoint. */
export type PortSpec = { first: number; last: number } | { name: string };

export interface EntityMatch {
  /** Endpoint selector; with `namespaces` it names the namespaces it applies in. */
  selector?: Selector;
  /** Namespace scope of `selector`: a fixed namespace, or a selector over namespace labels. */
  namespace?: string;
  namespaceSelector?: Selector;
  notSelector?: Selector;
  nets?: string[];
  notNets?: string[];
  ports?: PortSpec[];
  notPorts?: PortSpec[];
}

export interface Rule {
  action: Action;
  protocol?: number;
  notProtocol?: number;
  icmp?: { type: number; code?: number };
  notICMP?: { type: number; code?: number };
  ipVersion?: Family;
  source: EntityMatch;
  destination: EntityMatch;
}

export interface Origin {
  file: string;
  line: number;
}

export type PolicyKind = 'KubernetesNetworkPolicy' | 'NetworkPolicy' | 'GlobalNetworkPolicy';

export interface Policy {
  kind: PolicyKind;
  name: string;
  /** Set for namespaced kinds: the policy only selects endpoints of this namespace. */
  namespace?: string;
  tier: string;
  order?: number;
  selector: Selector;
  /** GlobalNetworkPolicy: also require the endpoint's namespace labels to match. */
  namespaceSelector?: Selector;
  types: { ingress: boolean; egress: boolean };
  ingress: Rule[];
  egress: Rule[];
  origin?: Origin;
}

export interface Tier {
  name: string;
  order?: number;
  /** What happens to a selected endpoint when no policy of the tier decides (Calico default: Deny). */
  defaultAction: 'Deny' | 'Pass';
  origin?: Origin;
}

export interface Tenant {
  name: string;
  namespaces: string[];
  origin?: Origin;
}

export interface Namespace {
  name: string;
  labels: Record<string, string>;
  origin?: Origin;
}

export interface Settings {
  tenantIsolation: boolean;
  /** Endpoint or namespace label naming the tenant (used when no Tenant lists the namespace). */
  tenantLabel: string;
}

export const DEFAULT_SETTINGS: Settings = { tenantIsolation: false, tenantLabel: 'tern.io/tenant' };

export interface NamedPort {
  name: string;
  protocol: number;
  port: number;
}

/** An attached pod as the ACL engine sees it. */
export interface Endpoint {
  name: string;
  namespace: string;
  tenant?: string;
  labels: Record<string, string>;
  /** Host addresses, without prefix length (or with /32, /128). */
  ips: string[];
  hostIface: string;
  namedPorts: NamedPort[];
  /** The node the endpoint is attached on (its host veth lives there); unset: every node treats it as its own. */
  node?: string;
}

/** Everything the compiler needs; order of the arrays never matters. */
export interface PolicyInput {
  policies: Policy[];
  tiers: Tier[];
  tenants: Tenant[];
  namespaces: Namespace[];
  endpoints: Endpoint[];
  settings: Settings;
}

export const DEFAULT_TIER = 'default';

export function policyKey(p: Pick<Policy, 'kind' | 'namespace' | 'name'>): string {
  return p.namespace ? `${p.kind}/${p.namespace}/${p.name}` : `${p.kind}/${p.name}`;
}

export function endpointKey(e: Pick<Endpoint, 'namespace' | 'name'>): string {
  return `${e.namespace}/${e.name}`;
}

export function emptyInput(): PolicyInput {
  return { policies: [], tiers: [], tenants: [], namespaces: [], endpoints: [], settings: { ...DEFAULT_SETTINGS } };
}
