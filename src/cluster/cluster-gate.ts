/**
 * The trunk gate of a node in a cluster: the budget (slots, calls per second, trunk state, probe)
 * lives in a SharedBudget (Redis) and is decided there in one round trip per new call; the
 * gate's other steps (release, a probe's verdict, a failure) are sent without the call waiting.
 *
 * Redis trouble never blocks a call: a command that fails or times out puts the node on its local
 * share (a TrunkGate with cluster.local_share's limits) until a sync succeeds again; the sync then
 * re-takes the leases of every live call. Leases are renewed every third of their TTL by a real
 * timer: they expire on Redis's own clock, which the product's injectable clock does not drive.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { TrunkGate, type AdmitResult, type Admission, type Gate, type TrunkLimits, type TrunkSnapshot } from '../core/trunk.js';
import type { SharedBudget, SharedLimits, SharedTrunk } from './budget.js';

type ClusterConfig = NonNullable<Config['cluster']>;

class ClusterAdmission implements Admission {
  /** `local`: admitted by the local share while Redis was unreachable. */
  constructor(readonly id: string, readonly probe: boolean, readonly local?: Admission) {}
}

export class ClusterGate extends EventEmitter implements Gate {
  /** Times this node fell back to its local share (metric). */
  fallbacks = 0;
  private readonly fallback: TrunkGate;
  /** Slots of this node's live calls: what a sync keeps, and takes again after an outage. */
  private readonly live = new Set<string>();
  /** Admissions Redis has not answered yet: a sync must not drop them, nor take one it refused. */
  private readonly inFlight = new Set<string>();
  private shared?: SharedTrunk;
  private link: 'connecting' | 'up' | 'down' = 'connecting';
  private readonly idBase = randomUUID().slice(0, 8);
  private nextId = 0;
  private renewTimer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  private cooldownTimer?: { until: number; abort: AbortController; fired: boolean };
  private lastEmitted = '';

  constructor(
    private limits: TrunkLimits, private readonly cfg: ClusterConfig, private readonly budget: SharedBudget,
    private readonly clock: Clock, private readonly log: Logger,
  ) {
    super();
    this.fallback = new TrunkGate({ ...limits, ...cfg.local_share }, clock);
    this.fallback.on('change', () => this.emitIfChanged());
    budget.onTrunk((trunk) => this.apply(trunk));
    budget.onReady(() => void this.sync());
  }

  /** Joins the cluster, or starts on the local share when Redis cannot be reached (it rejoins by itself). */
  async start(): Promise<void> {
    this.renewTimer = setInterval(() => void this.sync(), Math.max(100, Math.floor(this.cfg.lease_ttl_ms / 3)));
    this.renewTimer.unref();
    await this.budget.connect().catch((err: unknown) => this.goDown(err));
    await this.sync();
  }

  /** Redis commands sent so far (the benchmark's round trips per call). */
  get roundTrips(): number {
    return this.budget.roundTrips;
  }

  get connected(): boolean {
    return this.link === 'up';
  }

  async admit(): Promise<AdmitResult> {
    const id = `${this.idBase}.${++this.nextId}`;
    if (this.connected) {
      this.inFlight.add(id);
      try {
        const answer = await this.budget.admit(id, this.clock.now(), this.sharedLimits());
        this.apply(answer.trunk);
        if (!answer.admitted) return { admitted: false, status: answer.status };
        this.live.add(id);
        return { admitted: true, admission: new ClusterAdmission(id, answer.probe) };
      } catch (err) {
        this.goDown(err);
      } finally {
        this.inFlight.delete(id);
      }
    }
    return this.admitLocally(id);
  }

  reportSuccess(admission: Admission): void {
    const { id, probe, local } = admission as ClusterAdmission;
    if (local) return this.fallback.reportSuccess(local);
    if (probe && this.connected) this.send(this.budget.succeed(id, this.clock.now()));
  }

  reportFailure(admission: Admission, reason: string): void {
    const { id, local } = admission as ClusterAdmission;
    if (local) return this.fallback.reportFailure(local, reason);
    if (!this.connected) return this.fallback.reportFailure({ probe: false }, reason);
    // Redis cannot take the failure: at least this node closes its trunk.
    this.send(this.budget.fail(id, this.clock.now(), reason, this.sharedLimits()), () => this.fallback.reportFailure({ probe: false }, reason));
  }

  release(admission: Admission): void {
    const { id, local } = admission as ClusterAdmission;
    this.live.delete(id);
    if (local) this.fallback.release(local);
    // While Redis is unreachable the next sync drops the slot instead.
    if (this.connected) this.send(this.budget.release(id, this.clock.now(), this.sharedLimits()));
    else this.emitIfChanged();
  }

  setLimits(limits: TrunkLimits): void {
    this.limits = limits;
    this.fallback.setLimits({ ...limits, ...this.cfg.local_share });
    this.emitIfChanged();
  }

  snapshot(): TrunkSnapshot {
    const shared = this.connected ? this.shared : undefined;
    const cluster = {
      name: this.cfg.name, node: this.cfg.node, connected: this.connected, nodeActive: this.live.size,
      failureNode: shared?.state === 'open' ? undefined : shared?.failureNode,
    };
    if (!shared) {
      const local = this.fallback.snapshot();
      return { ...local, active: this.live.size, atCapacity: this.live.size >= local.maxConcurrent, cluster };
    }
    return {
      state: shared.state, since: shared.since, cooldownUntil: shared.state === 'open' ? undefined : shared.cooldownUntil,
      probeInFlight: shared.probeInFlight, active: shared.active,
      maxConcurrent: this.limits.max_concurrent_calls, maxPerSecond: this.limits.max_calls_per_second,
      atCapacity: shared.active >= this.limits.max_concurrent_calls, lastFailure: shared.lastFailure, cluster,
    };
  }

  async close(): Promise<void> {
    clearInterval(this.renewTimer);
    this.cooldownTimer?.abort.abort();
    this.fallback.close();
    await this.syncing;
    await this.budget.close();
  }

  /** Local share: this node's live calls (some admitted by the cluster) count against it too. */
  private admitLocally(id: string): AdmitResult {
    if (this.live.size >= this.cfg.local_share.max_concurrent_calls) return { admitted: false, status: 'BUSY' };
    const local = this.fallback.admit();
    if (!local.admitted) return local;
    this.live.add(id);
    return { admitted: true, admission: new ClusterAdmission(id, local.admission.probe, local.admission) };
  }

  /** Renews the leases (taking them again after an outage) and reads the trunk; one at a time. */
  private sync(): Promise<void> {
    this.syncing ??= this.budget.sync([...this.live], [...this.inFlight], this.clock.now()).then((trunk) => {
      if (this.link !== 'up') this.log.info({ cluster: this.cfg.name, node: this.cfg.node, liveCalls: this.live.size }, 'cluster: Redis reachable; sharing the trunk with the cluster');
      this.link = 'up';
      this.apply(trunk, true);
    }, (err: unknown) => this.goDown(err)).finally(() => { this.syncing = undefined; });
    return this.syncing;
  }

  /** A step the call does not wait for; its failure only moves the node to its local share. */
  private send(step: Promise<SharedTrunk>, onFailure?: () => void): void {
    void step.then((trunk) => this.apply(trunk), (err: unknown) => {
      this.goDown(err);
      onFailure?.();
    });
  }

  private goDown(err: unknown): void {
    if (this.link === 'down') return;
    this.link = 'down';
    this.fallbacks += 1;
    const share = this.cfg.local_share;
    this.log.warn({ cluster: this.cfg.name, err: (err as Error).message, localShare: share },
      'cluster: Redis unreachable; using this node\'s local share until it is back');
    this.emitIfChanged();
  }

  /**
   * The newest trunk wins; a sync's answer always does (Redis may have restarted empty, its
   * version back at 0). A throttled one sets this node's timer for the end of the cool-down.
   */
  private apply(trunk: SharedTrunk, fromSync = false): void {
    if (!fromSync && this.shared && trunk.version < this.shared.version) return;
    this.shared = trunk;
    if (trunk.state === 'throttled') this.wakeAtCooldownEnd(trunk.cooldownUntil);
    this.emitIfChanged();
  }

  /**
   * Every node waits for the end; the first to tell Redis moves the cluster to probing, once. A
   * timer that fired while Redis was away is set again (at once) by the next throttled answer:
   * no call would ever arrive behind the dialplan's check to reopen the trunk otherwise.
   */
  private wakeAtCooldownEnd(until: number): void {
    if (this.cooldownTimer?.until === until && !this.cooldownTimer.fired) return;
    this.cooldownTimer?.abort.abort();
    const timer = { until, abort: new AbortController(), fired: false };
    this.cooldownTimer = timer;
    void this.clock.sleep(until - this.clock.now(), timer.abort.signal).then(() => {
      if (timer.abort.signal.aborted) return;
      timer.fired = true;
      if (this.connected) this.send(this.budget.endCooldown(this.clock.now()));
    });
  }

  private sharedLimits(): SharedLimits {
    return { maxConcurrent: this.limits.max_concurrent_calls, maxPerSecond: this.limits.max_calls_per_second, cooldownMs: this.limits.cooldown_s * 1000 };
  }

  private changeKey(): string {
    const s = this.snapshot();
    return `${s.state}|${s.probeInFlight}|${s.atCapacity}|${s.cluster?.connected}`;
  }

  /** The PBX hears of a change of state, probe or capacity, not of every call. */
  private emitIfChanged(): void {
    const key = this.changeKey();
    if (key === this.lastEmitted) return;
    this.lastEmitted = key;
    this.emit('change', this.snapshot());
  }
}
