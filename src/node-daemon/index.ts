export { NodeDaemon } from './daemon';
export { loadDaemonConfig, parseDaemonConfig, DEFAULT_CNI_SOCKET } from './config';
export type { DaemonConfig } from './config';
export { CniServer } from './cni-server';
export { Metrics } from './metrics';
