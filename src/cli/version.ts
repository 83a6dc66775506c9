/**
 * `ternctl version`: the build's version and git commit (written into
 * dist/build-info.json by scripts/build.mjs), Node's version and the CNI
 * spec versions the plugin accepts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SUPPORTED_VERSIONS } from '../cni-plugin/version';

export interface VersionInfo {
  version: string;
  commit: string;
  node: string;
  cniVersions: string[];
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export function versionInfo(): VersionInfo {
  // Built: dist/src/cli -> dist/build-info.json. From source (tests): the checkout's package.json, commit unknown.
  const built = readJson(path.join(__dirname, '../../build-info.json'));
  const pkg = built ?? readJson(path.join(__dirname, '../../package.json')) ?? {};
  return { version: String(pkg.version ?? 'unknown'), commit: String(built?.commit ?? 'unknown'), node: process.version, cniVersions: [...SUPPORTED_VERSIONS] };
}

export function formatVersion(v: VersionInfo): string {
  return `ternctl ${v.version} (commit ${v.commit})\nNode ${v.node}\nCNI spec versions: ${v.cniVersions.join(', ')}\n`;
}
