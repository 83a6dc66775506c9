import { describe, expect, it } from 'vitest';
import { normalisePool } from './model';
import { validatePoolChange, type PoolBlock } from './pool-change';

const pool = (cidr: string, blockSize?: number) => normalisePool({ cidr, blockSize });
const block = (cidr: string, used = 0): PoolBlock => ({ pool: '10.0.0.0/16', cidr, used });

describe('validatePoolChange', () => {
  const table: [string, Parameters<typeof validatePoolChange>, RegExp | undefined][] = [
    ['a new pool', [undefined, pool('10.0.0.0/16'), [], []], undefined],
    ['beside another pool', [undefined, pool('10.1.0.0/16'), [pool('10.0.0.0/16')], []], undefined],
    ['inside another pool', [undefined, pool('10.0.128.0/17'), [pool('10.0.0.0/16')], []], /overlaps pool 10\.0\.0\.0\/16/],
    ['around another pool', [undefined, pool('10.0.0.0/8'), [pool('10.0.0.0/16')], []], /overlaps/],
    ['other families never overlap', [undefined, pool('fd00::/64'), [pool('10.0.0.0/16')], []], undefined],
    ['itself is no overlap', [pool('10.0.0.0/16'), pool('10.0.0.0/16'), [pool('10.0.0.0/16')], []], undefined],
    ['block size change without blocks', [pool('10.0.0.0/16', 26), pool('10.0.0.0/16', 28), [], []], undefined],
    ['block size change under blocks', [pool('10.0.0.0/16', 26), pool('10.0.0.0/16', 28), [], [block('10.0.0.0/26')]], /blockSize cannot change from \/26 to \/28 while it has 1 blocks/],
    ['other changes under blocks', [pool('10.0.0.0/16', 26), { ...pool('10.0.0.0/16', 26), disabled: true }, [], [block('10.0.0.0/26', 3)]], undefined],
    ['delete with empty blocks', [pool('10.0.0.0/16'), undefined, [], [block('10.0.0.0/26')]], undefined],
    ['delete with addresses in use', [pool('10.0.0.0/16'), undefined, [], [block('10.0.0.0/26', 2)]], /2 addresses in use/],
  ];
  for (const [name, args, err] of table) {
    it(name, () => {
      if (err) expect(() => validatePoolChange(...args)).toThrow(err);
      else expect(() => validatePoolChange(...args)).not.toThrow();
    });
  }
});
