import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';

export type TrunkState = 'open' | 'throttled' | 'probing';

/** A call let through the gate; hand it back with release(). */
export interface Admission {
  readonly probe: boolean;
}

export type AdmitResult = { admitted: true; admission: Admission } | { admitted: false; status: 'THROTTLED' | 'BUSY' };

export interface TrunkSnapshot {
  state: TrunkState;
  since: number;
  /** When a throttled trunk lets its next probe call through. */
  cooldownUntil?: number;
  /** Probing, and the probe call is in progress: no other call may come in meanwhile. */
  probeInFlight: boolean;
  active: number;
  maxConcurrent: number;
  maxPerSecond: number;
  atCapacity: boolean;
  lastFailure?: string;
  /** With a cluster: the state above is the cluster's (unless Redis is unreachable), and whose failure closed it. */
  cluster?: ClusterView;
}

export interface ClusterView {
  name: string;
  node: string;
  /** False while Redis cannot be reached: the node runs on its local share. */
  connected: boolean;
  /** The node that saw the failure that closed the trunk. */
  failureNode?: string;
  /** Calls of this node holding a slot. */
  nodeActive: number;
}

/**
 * What the call flow, the dialer and campaigns use: this node's own TrunkGate, or a ClusterGate
 * (src/cluster/) sharing the budget with other nodes. admit() may answer at once (TrunkGate: no
 * promise, so the single-node path stays as fast as before) or after a Redis round trip.
 */
/** What the trunk gate reads of trunk: its cool-down and capacity. */
export type TrunkLimits = Pick<Config['trunk'], 'cooldown_s' | 'max_concurrent_calls' | 'max_calls_per_second'>;

export interface Gate {
  admit(): AdmitResult | Promise<AdmitResult>;
  reportSuccess(admission: Admission): void;
  reportFailure(admission: Admission, reason: string): void;
  release(admission: Admission): void;
  snapshot(): TrunkSnapshot;
  setLimits(limits: TrunkLimits): void;
  on(event: 'change', listener: (snapshot: TrunkSnapshot) => void): unknown;
  start?(): Promise<void>;
  close(): void | Promise<void>;
}

/**
 * The trunk to Twin: closed for a cool-down after Twin fails, then one probe call, reopened when
 * the probe succeeds. Also caps concurrent calls and new calls per second so Twin never has to
 * reject for rate. Emits 'change' with a TrunkSnapshot whenever the state, capacity or probe flips.
 *
 * The cool-down ends by the clock, not by a call: the PBX dialplans skip the product while the
 * published state says closed, so a trunk that waited for a call to notice the end would never
 * reopen. While probing, only the probe is admitted; once it is in flight the published state
 * says closed again, until it succeeds (open), fails (throttled) or ends without a verdict (probing).
 */
export class TrunkGate extends EventEmitter implements Gate {
  private state: TrunkState = 'open';
  private since: number;
  private cooldownUntil = 0;
  private probeInFlight = false;
  private active = 0;
  private lastFailure?: string;
  /** Admission times of the last `maxPerSecond` calls, oldest first (a sliding one-second window). */
  private readonly recent: number[] = [];
  private wasAtCapacity = false;
  /** Aborts the wait for the end of the running cool-down. */
  private cooldownTimer?: AbortController;

  constructor(private limits: TrunkLimits, private readonly clock: Clock) {
    super();
    this.since = clock.now();
  }

  admit(): AdmitResult {
    const now = this.clock.now();
    this.probeIfCooledDown();
    if (this.state === 'throttled' || (this.state === 'probing' && this.probeInFlight)) {
      return { admitted: false, status: 'THROTTLED' };
    }
    if (!this.hasCapacity(now)) return { admitted: false, status: 'BUSY' };
    const probe = this.state === 'probing';
    if (probe) this.setProbeInFlight(true);
    this.active += 1;
    this.recent.push(now);
    if (this.recent.length > this.limits.max_calls_per_second) this.recent.shift();
    this.emitIfCapacityFlipped();
    return { admitted: true, admission: { probe } };
  }

  /** Twin took the call (id or null): a probe reopens the trunk. */
  reportSuccess(admission: Admission): void {
    if (admission.probe && this.state === 'probing') this.setState('open');
  }

  /** Twin failed (non-200, timeout, network, bot 503): close the trunk for the cool-down. */
  reportFailure(admission: Admission, reason: string): void {
    this.lastFailure = reason;
    if (this.state === 'throttled') return;
    if (this.state === 'probing' && !admission.probe) return;
    this.cooldownUntil = this.clock.now() + this.limits.cooldown_s * 1000;
    this.setState('throttled');
    this.wakeAtCooldownEnd();
  }

  release(admission: Admission): void {
    this.active = Math.max(0, this.active - 1);
    if (admission.probe) this.setProbeInFlight(false);
    this.emitIfCapacityFlipped();
  }

  /** Stops the cool-down timer (the product is stopping). */
  close(): void {
    this.cooldownTimer?.abort();
  }

  /** New limits from a reloaded config; calls already admitted stay. A running cool-down keeps its end. */
  setLimits(limits: TrunkLimits): void {
    this.limits = limits;
    while (this.recent.length > limits.max_calls_per_second) this.recent.shift();
    this.emitIfCapacityFlipped();
  }

  snapshot(): TrunkSnapshot {
    return {
      state: this.state,
      since: this.since,
      cooldownUntil: this.state === 'open' ? undefined : this.cooldownUntil,
      probeInFlight: this.state === 'probing' && this.probeInFlight,
      active: this.active,
      maxConcurrent: this.limits.max_concurrent_calls,
      maxPerSecond: this.limits.max_calls_per_second,
      atCapacity: this.active >= this.limits.max_concurrent_calls,
      lastFailure: this.lastFailure,
    };
  }

  private hasCapacity(now: number): boolean {
    if (this.active >= this.limits.max_concurrent_calls) return false;
    const oldest = this.recent[0];
    return this.recent.length < this.limits.max_calls_per_second || oldest === undefined || now - oldest >= 1000;
  }

  /** A timer on the gate's clock: when the cool-down ends, the trunk shows it is waiting for its probe. */
  private wakeAtCooldownEnd(): void {
    this.cooldownTimer?.abort();
    const timer = (this.cooldownTimer = new AbortController());
    void this.clock.sleep(this.cooldownUntil - this.clock.now(), timer.signal).then(() => {
      if (!timer.signal.aborted) this.probeIfCooledDown();
    });
  }

  private probeIfCooledDown(): void {
    if (this.state === 'throttled' && this.clock.now() >= this.cooldownUntil) this.setState('probing');
  }

  /** In flight, the probe closes the published state again; ended without a verdict, it reopens it. */
  private setProbeInFlight(inFlight: boolean): void {
    if (inFlight === this.probeInFlight) return;
    this.probeInFlight = inFlight;
    if (this.state === 'probing') this.emit('change', this.snapshot());
  }

  private setState(state: TrunkState): void {
    if (state === this.state) return;
    this.state = state;
    this.since = this.clock.now();
    this.emit('change', this.snapshot());
  }

  private emitIfCapacityFlipped(): void {
    const atCapacity = this.active >= this.limits.max_concurrent_calls;
    if (atCapacity === this.wasAtCapacity) return;
    this.wasAtCapacity = atCapacity;
    this.emit('change', this.snapshot());
  }
}
