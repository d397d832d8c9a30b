/**
 * What the trunk gate needs from a store shared by the nodes of a cluster. The Redis implementation
 * is redis-budget.ts; another store (etcd, a database) would implement this interface.
 */
import type { TrunkState } from '../core/trunk.js';

/** The cluster's trunk, as the store last told it. */
export interface SharedTrunk {
  state: TrunkState;
  /** When the cluster's trunk took this state; a store that held no trunk records the first `now` it is given. */
  since: number;
  /** When a throttled trunk lets its probe through (the node's clock, ms). */
  cooldownUntil: number;
  probeInFlight: boolean;
  /** The node that saw the failure that closed the trunk, and what it saw. */
  failureNode?: string;
  lastFailure?: string;
  /** Slots held cluster-wide. */
  active: number;
  /** Grows with every change: an older message never overwrites a newer state. */
  version: number;
}

export type SharedAdmit = { trunk: SharedTrunk } & ({ admitted: true; probe: boolean } | { admitted: false; status: 'THROTTLED' | 'BUSY' });

export interface SharedLimits {
  maxConcurrent: number;
  maxPerSecond: number;
  cooldownMs: number;
}

/**
 * Slots are named by call ids unique to this node. Every method rejects when the store does not answer within its bound; the caller then goes on
 * with the node's local share. `now` is the node's clock (cool-downs, the rate window); leases run
 * on the store's own time, as they must outlive the node that took them.
 */
export interface SharedBudget {
  /** Rejects when the store cannot be reached now; the gate then starts on the local share and rejoins later. */
  connect(): Promise<void>;
  /** One round trip: trunk state, probe, concurrency and rate checked and the slot taken at once. */
  admit(slot: string, now: number, limits: SharedLimits): Promise<SharedAdmit>;
  release(slot: string, now: number, limits: SharedLimits): Promise<SharedTrunk>;
  /** The probe call went through: the trunk reopens for the cluster. */
  succeed(slot: string, now: number): Promise<SharedTrunk>;
  fail(slot: string, now: number, reason: string, limits: SharedLimits): Promise<SharedTrunk>;
  /** The cool-down's end, told by any node: the first one moves the cluster to probing. */
  endCooldown(now: number): Promise<SharedTrunk>;
  /**
   * Renews this node's leases for `live` (taking them again if lost), renews those of `inFlight`
   * (admissions not answered yet) only where Redis holds them, and drops its other slots.
   */
  sync(live: string[], inFlight: string[], now: number): Promise<SharedTrunk>;
  /** Trunk changes published by any node (this one included). */
  onTrunk(listener: (trunk: SharedTrunk) => void): void;
  /** The connection came (back): the gate syncs at once instead of at its next tick. */
  onReady(listener: () => void): void;
  /** Store commands sent so far (the benchmark counts round trips per call). */
  readonly roundTrips: number;
  close(): Promise<void>;
}
