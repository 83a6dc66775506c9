/**
 * The node daemon's Prometheus metrics (prom-client): the process's own
 * (CPU, RSS, fds, event-loop lag) plus Tern's. Counters end in _total; state
 * is a value (a BGP session's FSM state as its number), never a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Outcome } from '../lib/errors-cni';
import type { PeerView, SpeakerStats } from '../bgp-speaker';
import type { LoopStatus } from '../lib/reconcile-loop';

/** RFC 4273 (BGP4-MIB) bgpPeerState numbering. */
export const BGP_STATE: Record<string, number> = { Idle: 1, Connect: 2, Active: 3, OpenSent: 4, OpenConfirm: 5, Established: 6 };

/** The CNI error code of an outcome (0 when it succeeded), as the result label. */
export function cniCode(o: Outcome): string {
  if (o.exitCode === 0) return '0';
  try {
    const code = (JSON.parse(o.stdout) as { code?: unknown }).code;
    return typeof code === 'number' ? String(code) : '999';
  } catch {
    return '999';
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly cniRequests = new Counter({ name: 'tern_cni_requests_total', help: 'CNI requests served, by verb and CNI result code (0: success)', labelNames: ['command', 'code'], registers: [this.registry] });
  private readonly cniLatency = new Histogram({
    name: 'tern_cni_request_duration_seconds',
    help: 'CNI request latency, by verb and CNI result code',
    labelNames: ['command', 'code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly cniMalformed = new Counter({ name: 'tern_cni_malformed_requests_total', help: 'CNI requests that could not be decoded or were too large (answered with code 6)', labelNames: ['reason'], registers: [this.registry] });
  private readonly aclSyncs = new Counter({ name: 'tern_acl_syncs_total', help: 'ACL syncs, by result', labelNames: ['result'], registers: [this.registry] });
  private readonly aclSyncTime = new Histogram({ name: 'tern_acl_sync_duration_seconds', help: 'ACL compile and apply time', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry] });
  private readonly reclaimed = new Counter({ name: 'tern_ipam_blocks_reclaimed_total', help: 'Empty blocks returned to their pools', registers: [this.registry] });
  private readonly bgpState = new Gauge({ name: 'tern_bgp_session_state', help: 'BGP session FSM state per peer (1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established)', labelNames: ['peer'], registers: [this.registry] });
  private readonly bfdUp = new Gauge({ name: 'tern_bgp_bfd_up', help: 'BFD session per BGP peer that uses BFD: 1 when Up', labelNames: ['peer'], registers: [this.registry] });
  private readonly loopRuns = new Gauge({ name: 'tern_reconcile_runs', help: 'Runs of each reconcile loop since the daemon started', labelNames: ['loop'], registers: [this.registry] });
  private readonly loopFailures = new Gauge({ name: 'tern_reconcile_failures', help: 'Failed runs of each reconcile loop since the daemon started', labelNames: ['loop'], registers: [this.registry] });
  private readonly loopFailing = new Gauge({ name: 'tern_reconcile_consecutive_failures', help: 'Failures of each reconcile loop since its last success (0: in sync)', labelNames: ['loop'], registers: [this.registry] });
  private readonly loopDuration = new Gauge({ name: 'tern_reconcile_last_duration_seconds', help: 'Duration of the last run of each reconcile loop', labelNames: ['loop'], registers: [this.registry] });
  private readonly bgpRoutes = new Gauge({ name: 'tern_bgp_routes', help: 'Prefixes in the Loc-RIB', registers: [this.registry] });
  private readonly fibErrors = new Counter({ name: 'tern_bgp_fib_errors_total', help: 'Kernel route writes that failed', registers: [this.registry] });
  private readonly ipamBlocks = new Gauge({ name: 'tern_ipam_node_blocks', help: 'IPAM blocks affine to this node', registers: [this.registry] });
  private readonly ipamUsed = new Gauge({ name: 'tern_ipam_node_addresses_used', help: "Addresses in use in this node's blocks", registers: [this.registry] });
  private readonly ipamCapacity = new Gauge({ name: 'tern_ipam_node_addresses_capacity', help: "Addresses in this node's blocks", registers: [this.registry] });
  private fibErrorsSeen = 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters (promtool rejects them); nodejs_active_* by type hold the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
  }

  cni(command: string, seconds: number, outcome: Outcome): void {
    const labels = { command: command || 'unknown', code: cniCode(outcome) };
    this.cniRequests.inc(labels);
    this.cniLatency.observe(labels, seconds);
  }

  malformed(reason: string): void {
    this.cniMalformed.inc({ reason });
  }

  aclSync(ok: boolean, seconds: number): void {
    this.aclSyncs.inc({ result: ok ? 'ok' : 'error' });
    this.aclSyncTime.observe(seconds);
  }

  blocksReclaimed(n: number): void {
    this.reclaimed.inc(n);
  }

  /** Reconcile loops at scrape time (their own counts since start, so gauges: a scrape never double-counts). */
  reconcile(loops: LoopStatus[]): void {
    for (const l of loops) {
      this.loopRuns.set({ loop: l.name }, l.runs);
      this.loopFailures.set({ loop: l.name }, l.failures);
      this.loopFailing.set({ loop: l.name }, l.consecutiveFailures);
      this.loopDuration.set({ loop: l.name }, (l.lastDurationMs ?? 0) / 1000);
    }
  }

  /** BGP state at scrape time: one sample per current peer (removed peers disappear). */
  bgp(peers: PeerView[], stats: SpeakerStats): void {
    this.bgpState.reset();
    for (const p of peers) this.bgpState.set({ peer: p.address }, BGP_STATE[p.state] ?? 0);
    this.bfdUp.reset();
    for (const p of peers) if (p.bfd) this.bfdUp.set({ peer: p.address }, p.bfd.state === 'Up' ? 1 : 0);
    this.bgpRoutes.set(stats.routes);
    // The speaker counts since it started; the counter takes the growth since the last scrape.
    if (stats.fibErrors > this.fibErrorsSeen) this.fibErrors.inc(stats.fibErrors - this.fibErrorsSeen);
    this.fibErrorsSeen = stats.fibErrors;
  }

  ipam(row: { blocks: number; used: number; capacity: number } | undefined): void {
    this.ipamBlocks.set(row?.blocks ?? 0);
    this.ipamUsed.set(row?.used ?? 0);
    this.ipamCapacity.set(row?.capacity ?? 0);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
