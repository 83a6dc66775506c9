// Synthetic policy sets and endpoints for the ACL benchmarks.
import { createHash } from 'node:crypto';
export function namespacesYaml(n = 50) {
  let y = '';
  for (let j = 0; j < n; j++) y += `---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns${j}, labels: {team: t${j % 5}}}\n`;
  return y;
}

/** P policies over 50 namespaces and 20 apps: a third each Kubernetes, Tern namespaced, Tern global. */
export function policiesYaml(p) {
  let y = '';
  for (let i = 0; i < p; i++) {
    const ns = `ns${i % 50}`;
    const app = `app${i % 20}`;
    const peer = `app${(i + 1) % 20}`;
    if (i % 3 === 0) {
      y += `---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k${i}, namespace: ${ns}}\nspec:\n  podSelector: {matchLabels: {app: ${app}}}\n  ingress:\n    - from: [{podSelector: {matchLabels: {app: ${peer}}}}, {namespaceSelector: {matchLabels: {team: t${i % 5}}}}]\n      ports: [{port: ${8000 + (i % 100)}}, {port: http}]\n`;
    } else if (i % 3 === 1) {
      y += `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: t${i}, namespace: ${ns}}\nspec:\n  selector: app == "${app}" && tier != "x"\n  ingress:\n    - action: Allow\n      protocol: TCP\n      source:\n        selector: app in {"${peer}", "app${(i + 2) % 20}"}\n      destination: {ports: [80, "9000:9100"]}\n  egress:\n    - action: Allow\n`;
    } else {
      y += `---\napiVersion: tern.io/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: g${i}}\nspec:\n  order: ${i}\n  selector: app == "${app}"\n  ingress:\n    - action: Deny\n      source: {nets: [10.200.${i % 256}.0/24, 10.201.${i % 256}.0/24]}\n    - action: Allow\n      protocol: UDP\n      destination: {ports: [53]}\n`;
    }
  }
  return y;
}

/** Host veth names are hashes, as the CNI plugin's are: the interface dispatch sees the same spread of prefixes. */
const veth = (i) => `tern${createHash('sha256').update(`pod${i}`).digest('hex').slice(0, 11)}`;

/** Pod i; with `nodes`, placed on node n<i mod nodes>. */
export function endpoint(i, nodes) {
  return {
    kind: 'Endpoint',
    key: `ns${i % 50}/pod${i}`,
    value: {
      name: `pod${i}`,
      namespace: `ns${i % 50}`,
      labels: { app: `app${i % 20}` },
      ips: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
      hostIface: veth(i),
      namedPorts: [{ name: 'http', protocol: 6, port: 8080 }],
      ...(nodes ? { node: `n${i % nodes}` } : {}),
    },
  };
}

/** Five policies that select both probe pods (namespace probe), ordered after every generated one; a SYN to `port` meets all five each way. */
export function probePoliciesYaml(port) {
  let y = '';
  for (let k = 0; k < 5; k++) {
    const p = k === 4 ? port : 7100 + k;
    y += `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: probe${k}, namespace: probe}\nspec:\n  order: ${10000 + k}\n  selector: role == "probe"\n  ingress: [{action: Allow, protocol: TCP, source: {selector: role == "probe"}, destination: {ports: [${p}]}}]\n  egress: [{action: Allow, protocol: TCP, destination: {ports: [${p}]}}]\n`;
  }
  return y;
}
