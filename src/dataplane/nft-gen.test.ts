import { describe, expect, it } from 'vitest';
import { parseGenReply } from './nft-gen';

// Replies recorded from this kernel (6.18): nfgenmsg, then NFTA_GEN_ID, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME.
describe('parseGenReply', () => {
  it.each([
    ['generation 1, first attribute', '0000000108000100000000010800020000005025090003006e6f646500000000', 1],
    ['generation 0x12345678', '0000567808000100123456780800020000005031090003006e6f646500000000', 0x12345678],
    ['after other attributes, NLA_F_NESTED clear', '000000010800020000005025090003006e6f64650000000008000100000000ff', 255],
  ])('%s', (_what, hex, gen) => expect(parseGenReply(Buffer.from(hex, 'hex'))).toBe(gen));
  it.each([
    ['no attributes', '00000000'],
    ['only the pid', '000000010800020000005025'],
    ['a truncated attribute', '000000010800010000'],
    ['a zero-length attribute', '0000000100000100'],
  ])('%s: none', (_what, hex) => expect(parseGenReply(Buffer.from(hex, 'hex'))).toBeUndefined());
});
