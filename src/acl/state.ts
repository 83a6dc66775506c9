/**
 * Accumulates resource updates (upserts and deletes by key) into the compiler
 * input. The result depends only on the final set of resources, never on the
 * order updates arrived in: the compiler sorts everything it is given.
 */
import { DEFAULT_SETTINGS, type PolicyInput } from './model';
import type { Resource } from './parse';

export type Update = { op: 'upsert'; resource: Resource } | { op: 'delete'; kind: Resource['kind']; key: string };

export class PolicyState {
  private readonly items = new Map<string, Resource>();

  apply(updates: Iterable<Update>): void {
    for (const u of updates) {
      if (u.op === 'upsert') this.items.set(`${u.resource.kind}\0${u.resource.key}`, u.resource);
      else this.items.delete(`${u.kind}\0${u.key}`);
    }
  }

  resources(): Resource[] {
    return [...this.items.values()];
  }

  input(): PolicyInput {
    return toInput(this.items.values());
  }
}

export function toInput(resources: Iterable<Resource>): PolicyInput {
  const input: PolicyInput = { policies: [], tiers: [], tenants: [], namespaces: [], endpoints: [], settings: { ...DEFAULT_SETTINGS } };
  for (const r of resources) {
    switch (r.kind) {
      case 'Policy':
        input.policies.push(r.value);
        break;
      case 'Tier':
        input.tiers.push(r.value);
        break;
      case 'Tenant':
        input.tenants.push(r.value);
        break;
      case 'Namespace':
        input.namespaces.push(r.value);
        break;
      case 'Endpoint':
        input.endpoints.push(r.value);
        break;
      case 'Settings':
        input.settings = r.value;
        break;
    }
  }
  return input;
}
