import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './sandbox';
import { parseNetConf } from '../src/cni-plugin/config';
import { parseDaemonConfig } from '../src/node-daemon/config';

/** The files the README's install steps copy onto a node are valid as shipped. */
describe('packaging', () => {
  it('the conflist\'s plugin parses as a tern network config', () => {
    const list = JSON.parse(fs.readFileSync(path.join(REPO, 'packaging', '10-tern.conflist'), 'utf8'));
    const conf = parseNetConf({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] }, { needIpam: true });
    expect(conf.ipam.pools).toEqual(['10.244.0.0/16', 'fd00:10:244::/48']);
  });

  it('the README\'s node.yaml example is a valid daemon config', async () => {
    const yaml = (await import('yaml')).default;
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const block = /```yaml\n(nodename:[\s\S]*?)```/.exec(readme);
    expect(block).not.toBeNull();
    const cfg = parseDaemonConfig(yaml.parse(block![1]));
    expect(cfg).toMatchObject({ cniSocket: '/run/tern/cni.sock', policyDir: '/etc/tern/policies.d', ipam: { reclaimInterval: 300, emptyBlockGrace: 900 } });
  });

  it('the systemd unit starts the daemon with the documented config path', () => {
    const unit = fs.readFileSync(path.join(REPO, 'packaging', 'tern-node.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/tern\/dist\/bin\/ternctl node run --config \/etc\/tern\/node\.yaml$/m);
  });
});
