import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDaemonConfig, parseDaemonConfig } from './config';

describe('daemon config: bad fields are named', () => {
  const table: [string, object, RegExp][] = [
    ['vxlan with bgp', { vxlan: {}, bgp: { mesh: true } }, /field "vxlan": turn "bgp" off/],
    ['vxlan VNI out of range', { vxlan: { vni: 0 } }, /field "vxlan.vni"/],
    ['reflector selector not key=value', { bgp: { reflectors: { selector: 'rr' } } }, /field "bgp.reflectors.selector"/],
    ['reclaim interval negative', { ipam: { reclaimInterval: -1 } }, /field "ipam.reclaimInterval"/],
    ['policyDir not a string', { policyDir: 3 }, /field "policyDir"/],
    ['a typo in datastore falls back to nothing', { datastore: { type: 'sqlite', pth: '/x.db' } }, /field "datastore\.pth": is not a known field \(datastore: type, path\)/],
    ['a typo in bgp', { bgp: { holdtime: 9 } }, /field "bgp\.holdtime": is not a known field/],
    ['an unknown top-level field', { cniSocke: '/run/x.sock' }, /field "cniSocke": is not a known field/],
    ['an unknown log level', { logLevel: 'verbose' }, /field "logLevel": must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/],
    ['an unknown datastore type', { datastore: { type: 'postgres' } }, /field "datastore\.type": must be sqlite or etcd/],
    ['a relative sqlite path', { datastore: { type: 'sqlite', path: 'x.db' } }, /field "datastore": .*absolute path/],
    ['a typo in ipam', { ipam: { reclaimIntervall: 5 } }, /field "ipam\.reclaimIntervall"/],
    ['a typo in reflectors', { bgp: { reflectors: { selector: 'rr=1', cluster: '1.1.1.1' } } }, /field "bgp\.reflectors\.cluster"/],
  ];
  for (const [name, raw, want] of table) it(name, () => expect(() => parseDaemonConfig(raw, 'node.yaml')).toThrow(want));
  it('a file: errors name the line of the field, and nothing else is parsed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-cfg-'));
    try {
      const f = path.join(dir, 'node.yaml');
      fs.writeFileSync(f, 'nodename: n1\ndatastore:\n  type: sqlite\n  pth: /tmp/x.db\nbgp:\n  holdTime: 9\n');
      expect(() => loadDaemonConfig(f)).toThrow(`${f}:4: field "datastore.pth": is not a known field`);
      fs.writeFileSync(f, 'nodename: n1\nbgp:\n  mesh: true\n  holdtime: 9\n');
      expect(() => loadDaemonConfig(f)).toThrow(`${f}:4: field "bgp.holdtime"`);
      fs.writeFileSync(f, 'nodename: n1\n\nlogLevel: verbose\n');
      expect(() => loadDaemonConfig(f)).toThrow(`${f}:3: field "logLevel": must be one of`);
      fs.writeFileSync(f, 'nodename: n1\nnodename: n2\n');
      expect(() => loadDaemonConfig(f)).toThrow(new RegExp(`^${f}:2: `));
      fs.writeFileSync(f, 'nodename: n1\nbgp:\n  holdTime: 9\n');
      expect(loadDaemonConfig(f).bgp?.holdTime).toBe(9);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('defaults', () => {
    expect(parseDaemonConfig({}, 'node.yaml')).toMatchObject({ policyDir: '/etc/tern/policies.d', ipam: { reclaimInterval: 300, emptyBlockGrace: 900 }, vxlan: undefined, bgp: undefined });
    expect(parseDaemonConfig({ vxlan: true }, 'node.yaml').vxlan).toEqual({ vni: undefined, port: undefined });
  });
});
