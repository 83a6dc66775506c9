/** Public surface of the BGP speaker. */
export * as codec from './codec';
export { Rib } from './rib';
export type { FibBatch, RibPeer, LocalConfig } from './rib';
export { createFsm, step } from './fsm';
export { Session } from './session';
export { Speaker, type FibSink, type PeerView, type RouteView, type SpeakerStats } from './speaker';
export { loadConfig, validateConfig, familiesOf, type SpeakerConfig, type PeerSpec } from './config';
export { serveControl, controlRequest, type ControlRequest } from './control';
