import { describe, expect, it } from 'vitest';
import { blockOfAffinityKey, diffBlackholes, ownBlocks } from './block-routes';
import { affinityKey } from '../ipam/model';

describe('block blackhole routes (pure parts)', () => {
  it('reads the block back from an affinity key', () => {
    expect(blockOfAffinityKey(affinityKey('10.244.0.0/16', '10.244.3.64/26'))).toBe('10.244.3.64/26');
    expect(blockOfAffinityKey(affinityKey('fd00:10:244::/48', 'fd00:10:244::40/122'))).toBe('fd00:10:244::40/122');
    expect(blockOfAffinityKey('/tern/ipam/v1/affinity/garbage')).toBeUndefined();
  });

  it('keeps only this node\'s blocks', () => {
    const aff = [
      { key: affinityKey('10.244.0.0/16', '10.244.0.64/26'), value: 'n2' },
      { key: affinityKey('10.244.0.0/16', '10.244.0.0/26'), value: 'n1' },
      { key: affinityKey('fd00::/48', 'fd00::/122'), value: 'n1' },
    ];
    expect(ownBlocks(aff, 'n1')).toEqual(['10.244.0.0/26', 'fd00::/122']);
    expect(ownBlocks(aff, 'n3')).toEqual([]);
  });

  it.each([
    [[], [], { add: [], remove: [] }],
    [['a'], [], { add: ['a'], remove: [] }],
    [[], ['a'], { add: [], remove: ['a'] }],
    [['a', 'b'], ['b', 'c'], { add: ['a'], remove: ['c'] }],
  ])('diff %j vs %j', (desired, present, out) => {
    expect(diffBlackholes(desired, present)).toEqual(out);
  });
});
