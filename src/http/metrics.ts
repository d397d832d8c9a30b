/**
 * Prometheus metrics (prom-client, in a registry of our own). Events are counted as they happen;
 * state (active calls, trunk, PBX connections, logins) is read from its owner at scrape time.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TrunkSnapshot, TrunkState } from '../core/trunk.js';
import type { CallOutcome } from '../core/types.js';
import type { OutboundResult } from '../outbound/outbound.js';
import type { ConnectionState } from '../pbx/shared.js';

/** What the metrics read at scrape time. */
export interface MetricsSource {
  activeCalls(): number;
  trunk(): TrunkSnapshot;
  pbxConnections(): { pbx: string; state: ConnectionState }[];
  /** With a cluster: how often this node fell back to its local share (undefined without a cluster). */
  clusterFallbacks?(): number | undefined;
  /** IAM logins and refreshes so far, by result. */
  logins(): { ok: number; failed: number };
  warmupRequests(): number;
  /** Requests to Twin in flight, and those waiting for a free connection (twin.max_connections). */
  twinConnections?(): { inFlight: number; waiting: number };
  callbacks?(): { pending: number };
  /** Calls the PBX could not hand to the product (FreeSWITCH's `socket` failed), reported by its dialplan. */
  callsNotTaken?(): { pbx: string; count: number }[];
  /** Connections open on the HTTP port now, and those refused (503) over http.max_connections so far. */
  httpConnections?(): { open: number; refused: number };
}

const TRUNK_STATES: TrunkState[] = ['open', 'probing', 'throttled'];
/** Warm-ups take tens of ms to seconds (the bot gets ready); setups add the bot leg's answer. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20];

export class Metrics {
  readonly registry = new Registry();
  private readonly calls: Counter<'pbx' | 'direction' | 'outcome'>;
  private readonly warmup: Histogram<'pbx' | 'direction'>;
  private readonly setup: Histogram<'pbx' | 'direction'>;
  private readonly callbacks: Counter<'result'>;
  private readonly handover: Histogram<'pbx'>;
  private readonly shed: Counter<'pbx'>;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'twin_connector_' });
    this.calls = new Counter({
      name: 'twin_connector_calls_total', help: 'Calls that have left the product, by PBX, direction and outcome',
      labelNames: ['pbx', 'direction', 'outcome'], registers,
    });
    this.warmup = new Histogram({
      name: 'twin_connector_warmup_seconds', help: 'Round trip of the warm-up request to Twin',
      labelNames: ['pbx', 'direction'], buckets: LATENCY_BUCKETS, registers,
    });
    this.setup = new Histogram({
      name: 'twin_connector_setup_seconds', help: 'From the call reaching the product (or the answer) to the bot answering',
      labelNames: ['pbx', 'direction'], buckets: LATENCY_BUCKETS, registers,
    });
    this.handover = new Histogram({
      name: 'twin_connector_handover_delay_seconds',
      help: 'From the PBX handing a caller over (Stasis() / socket) to the product taking it; grows when the box is out of CPU',
      labelNames: ['pbx'], buckets: LATENCY_BUCKETS, registers,
    });
    this.shed = new Counter({
      name: 'twin_connector_calls_shed_total',
      help: 'Callers sent to the fallback (BUSY) without a warm-up: they reached the product later than trunk.max_handover_delay_ms',
      labelNames: ['pbx'], registers,
    });
    this.callbacks = new Counter({
      name: 'twin_connector_callbacks_total', help: 'Twin callbacks received and forwarded, by result',
      labelNames: ['result'], registers,
    });
    new Counter({
      name: 'twin_connector_calls_not_taken_total',
      help: 'Calls the PBX could not hand to the product (the dialplan sent them to its fallback instead)',
      labelNames: ['pbx'], registers,
      collect() {
        this.reset(); // the drivers hold the running count
        for (const { pbx, count } of source.callsNotTaken?.() ?? []) this.inc({ pbx }, count);
      },
    });
    new Gauge({
      name: 'twin_connector_active_calls', help: 'Calls in the product now (warming up, ringing or bridged)', registers,
      collect() { this.set(source.activeCalls()); },
    });
    new Gauge({
      name: 'twin_connector_trunk_state', help: 'Trunk to Twin: 1 for the current state', labelNames: ['state'], registers,
      collect() {
        const { state } = source.trunk();
        for (const s of TRUNK_STATES) this.set({ state: s }, s === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'twin_connector_trunk_at_capacity', help: '1 when max_concurrent_calls are in progress', registers,
      collect() { this.set(source.trunk().atCapacity ? 1 : 0); },
    });
    if (source.trunk().cluster) this.clusterMetrics(source, registers);
    new Gauge({
      name: 'twin_connector_pbx_connected', help: '1 when the ARI/ESL connection is up', labelNames: ['pbx'], registers,
      collect() {
        for (const { pbx, state } of source.pbxConnections()) this.set({ pbx }, state === 'connected' ? 1 : 0);
      },
    });
    new Counter({
      name: 'twin_connector_iam_logins_total', help: 'Twin IAM logins and token refreshes, by result', labelNames: ['result'], registers,
      collect() {
        const { ok, failed } = source.logins();
        this.reset(); // the totals are kept by TwinAuth
        this.inc({ result: 'ok' }, ok);
        this.inc({ result: 'failed' }, failed);
      },
    });
    new Counter({
      name: 'twin_connector_warmup_requests_total', help: 'Warm-up HTTP requests sent to Twin (one may carry many calls)', registers,
      collect() {
        this.reset(); // the total is kept by TwinApi
        this.inc(source.warmupRequests());
      },
    });
    if (source.twinConnections) {
      const read = source.twinConnections.bind(source);
      new Gauge({
        name: 'twin_connector_twin_requests_in_flight', help: 'Requests to Twin (warm-ups) holding a connection now', registers,
        collect() { this.set(read().inFlight); },
      });
      new Gauge({
        name: 'twin_connector_twin_requests_waiting',
        help: 'Requests to Twin waiting for a free connection (twin.max_connections); each waits twin.connection_wait_ms at most', registers,
        collect() { this.set(read().waiting); },
      });
    }
    if (source.httpConnections) {
      const read = source.httpConnections.bind(source);
      new Gauge({
        name: 'twin_connector_http_connections', help: 'Connections open on the HTTP port', registers,
        collect() { this.set(read().open); },
      });
      new Counter({
        name: 'twin_connector_http_connections_refused_total', help: 'HTTP connections answered 503 because http.max_connections were open', registers,
        collect() {
          this.reset(); // the total is kept by the HTTP server
          this.inc(read().refused);
        },
      });
    }
    if (source.callbacks) {
      const read = source.callbacks.bind(source);
      new Gauge({
        name: 'twin_connector_callbacks_pending', help: 'Twin callbacks stored and not yet delivered to every forward URL', registers,
        collect() { this.set(read().pending); },
      });
    }
  }

  /** The cluster's link and whose failure closed the trunk; the trunk gauges above already show the cluster's state. */
  private clusterMetrics(source: MetricsSource, registers: Registry[]): void {
    new Gauge({
      name: 'twin_connector_cluster_connected', help: '1 while Redis is reachable; 0 while this node runs on its local share', registers,
      collect() { this.set(source.trunk().cluster?.connected ? 1 : 0); },
    });
    new Counter({
      name: 'twin_connector_cluster_fallbacks_total', help: 'Times this node lost Redis and fell back to its local share', registers,
      collect() {
        this.reset(); // the count is kept by the gate
        this.inc(source.clusterFallbacks?.() ?? 0);
      },
    });
    new Gauge({
      name: 'twin_connector_cluster_trunk_closed_by', help: '1 for the node whose failure closed the cluster\'s trunk (none while open)',
      labelNames: ['node'], registers,
      collect() {
        this.reset();
        const node = source.trunk().cluster?.failureNode;
        if (node) this.set({ node }, 1);
      },
    });
    new Gauge({
      name: 'twin_connector_cluster_node_active_calls', help: 'Calls of this node holding a slot of the cluster', registers,
      collect() { this.set(source.trunk().cluster?.nodeActive ?? 0); },
    });
  }

  /**
   * An inbound call's outcome (or an outbound call once answered: see recordOutbound). setupKnown
   * false: a call an earlier run connected without noting when (its setup is not observed).
   */
  recordInbound(outcome: CallOutcome, { setupKnown = true } = {}): void {
    const labels = { pbx: outcome.pbx, direction: 'inbound' };
    this.calls.inc({ ...labels, outcome: outcome.status.toLowerCase() });
    if (outcome.warmupMs !== undefined) this.warmup.observe(labels, outcome.warmupMs / 1000);
    if (outcome.status === 'CONNECTED' && setupKnown) this.setup.observe(labels, outcome.setupMs / 1000);
  }

  /** How late a caller reached us after the PBX handed it over. */
  recordHandover(pbx: CallOutcome['pbx'], delayMs: number): void {
    this.handover.observe({ pbx }, delayMs / 1000);
  }

  /** A caller sent to the fallback for reaching us too late. */
  recordShed(pbx: CallOutcome['pbx']): void {
    this.shed.inc({ pbx });
  }

  recordOutbound(result: OutboundResult): void {
    const labels = { pbx: result.pbx, direction: 'outbound' };
    this.calls.inc({ ...labels, outcome: result.status });
    if (result.warmupMs !== undefined) this.warmup.observe(labels, result.warmupMs / 1000);
    if (result.status === 'connected' && result.setupMs !== undefined) this.setup.observe(labels, result.setupMs / 1000);
  }

  recordCallback(result: 'stored' | 'duplicate' | 'malformed' | 'forwarded' | 'retry' | 'gave-up'): void {
    this.callbacks.inc({ result });
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
