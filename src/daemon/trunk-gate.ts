/** The trunk gate: this node's own, or with `cluster:` one sharing the budget through Redis. */
import type { Clock } from '../clock.js';
import { ClusterGate } from '../cluster/cluster-gate.js';
import { RedisBudget } from '../cluster/redis-budget.js';
import type { Config } from '../config/schema.js';
import { TrunkGate, type Gate } from '../core/trunk.js';
import type { Logger } from '../log.js';

/** A dialer beside the daemon (CLI call, campaign) is a node of its own: a sync must never drop the daemon's slots. */
export function buildTrunkGate(config: Config, dialer: boolean, clock: Clock, log: Logger): Gate {
  if (!config.cluster) return new TrunkGate(config.trunk, clock);
  const cluster = dialer ? { ...config.cluster, node: `${config.cluster.node}.dialer.${process.pid}` } : config.cluster;
  return new ClusterGate(config.trunk, cluster, new RedisBudget(cluster, log), clock, log);
}
