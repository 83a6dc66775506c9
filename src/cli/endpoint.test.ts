import { describe, expect, it } from 'vitest';
import { applyLabelArgs, parsePortArgs } from './endpoint';

describe('ternctl endpoint argument parsing', () => {
  it.each([
    [{ app: 'web' }, ['tier=front'], { app: 'web', tier: 'front' }],
    [{ app: 'web', tier: 'front' }, ['tier-'], { app: 'web' }],
    [{ app: 'web' }, ['app=db', 'x.io/y=1'], { app: 'db', 'x.io/y': '1' }],
    [{}, ['gone-'], {}],
  ])('%j + %j', (labels, args, out) => {
    expect(applyLabelArgs(labels, args)).toEqual(out);
  });

  it.each(['=x', 'a b=c', 'novalue'])('rejects label %s', (a) => {
    expect(() => applyLabelArgs({}, [a])).toThrow(/key=value/);
  });

  it('parses named ports', () => {
    expect(parsePortArgs(['http:tcp:8080', 'dns:UDP:53', 'x:sctp:9'])).toEqual([
      { name: 'http', protocol: 6, port: 8080 },
      { name: 'dns', protocol: 17, port: 53 },
      { name: 'x', protocol: 132, port: 9 },
    ]);
  });

  it.each(['http:tcp:0', 'http:tcp:70000', 'http:icmp:1', 'HTTP_:tcp:80', 'http:80'])('rejects port %s', (a) => {
    expect(() => parsePortArgs([a])).toThrow(/name:protocol:port/);
  });
});
