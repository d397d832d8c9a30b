/**
 * The shared budget in Redis, through ioredis 5. Why ioredis: it is the client jambonz (a telephony
 * stack doing the same job) runs on; it has had stable releases for years; it bounds every command
 * itself (commandTimeout), can refuse to queue commands while disconnected (enableOfflineQueue:
 * false) so a call never waits for a reconnect, reconnects by itself, and runs Lua scripts by SHA
 * with the EVAL fallback built in (defineCommand). Only this file knows the client.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { TrunkState } from '../core/trunk.js';
import type { SharedAdmit, SharedBudget, SharedLimits, SharedTrunk } from './budget.js';
import { ADMIT, END_COOLDOWN, FAIL, RELEASE, SUCCEED, SYNC } from './scripts.js';

type ClusterConfig = NonNullable<Config['cluster']>;
type Script = (...args: (string | number)[]) => Promise<string>;
const SCRIPTS = { twinAdmit: ADMIT, twinRelease: RELEASE, twinSucceed: SUCCEED, twinFail: FAIL, twinEndCooldown: END_COOLDOWN, twinSync: SYNC };
const TRUNK_STATES: TrunkState[] = ['open', 'throttled', 'probing'];
/** Reconnect soon after Redis is back, but never hammer it: 50 ms, 100 ms, … up to 1 s. */
const retryDelay = (attempt: number) => Math.min(attempt * 50, 1000);

export class RedisBudget implements SharedBudget {
  roundTrips = 0;
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private readonly keys: string[];
  private readonly channel: string;
  private readonly nodePrefix: string;

  constructor(private readonly cfg: ClusterConfig, private readonly log: Logger) {
    // A hash tag keeps the keys in one slot, so the scripts also run on a Redis Cluster.
    const prefix = `twin:{${cfg.name}}:`;
    this.keys = [`${prefix}slots`, `${prefix}rate`, `${prefix}trunk`];
    this.channel = `${prefix}trunk-changes`;
    this.nodePrefix = `${cfg.node}|`;
    this.client = new Redis(cfg.redis_url, clientOptions(cfg, { enableOfflineQueue: false, commandTimeout: cfg.command_timeout_ms }));
    for (const [name, lua] of Object.entries(SCRIPTS)) this.client.defineCommand(name, { numberOfKeys: 3, lua });
    // Subscribing is off the call path: it may wait for the connection.
    this.subscriber = new Redis(cfg.redis_url, clientOptions(cfg, { enableOfflineQueue: true, maxRetriesPerRequest: null }));
    // Errors come back from each command; the events would only repeat them (and must be listened to).
    for (const c of [this.client, this.subscriber]) c.on('error', (err: Error) => this.log.debug({ err: err.message }, 'cluster: Redis connection error'));
  }

  /** A slot's name in Redis: this node's name first, so a node can find its own slots again. */
  private slotName(id: string): string {
    return `${this.nodePrefix}${id}`;
  }

  async connect(): Promise<void> {
    // Queued on the subscriber (its offline queue is on) even when Redis is down now: ioredis only
    // re-subscribes channels it has subscribed to, so a node started during an outage would
    // otherwise hear of the others' throttles at its syncs only.
    this.subscriber.subscribe(this.channel).catch((err: Error) => this.log.warn({ err: err.message }, 'cluster: could not subscribe to trunk changes'));
    await this.client.connect();
  }

  async admit(slot: string, now: number, limits: SharedLimits): Promise<SharedAdmit> {
    const raw = await this.run('twinAdmit', this.slotName(slot), now, limits.maxConcurrent, limits.maxPerSecond, this.cfg.lease_ttl_ms);
    const parsed = JSON.parse(raw) as Record<string, unknown>;
    const trunk = parseTrunk(parsed);
    if (!trunk) throw new Error('cluster: Redis answered an unreadable admission');
    if (parsed.admitted === true) return { trunk, admitted: true, probe: parsed.probe === true };
    return { trunk, admitted: false, status: parsed.status === 'THROTTLED' ? 'THROTTLED' : 'BUSY' };
  }

  release(slot: string, now: number, limits: SharedLimits): Promise<SharedTrunk> {
    return this.trunkOf('twinRelease', this.slotName(slot), limits.maxConcurrent, now);
  }

  succeed(slot: string, now: number): Promise<SharedTrunk> {
    return this.trunkOf('twinSucceed', this.slotName(slot), now);
  }

  fail(slot: string, now: number, reason: string, limits: SharedLimits): Promise<SharedTrunk> {
    return this.trunkOf('twinFail', this.slotName(slot), now, limits.cooldownMs, this.cfg.node, reason.slice(0, 200));
  }

  endCooldown(now: number): Promise<SharedTrunk> {
    return this.trunkOf('twinEndCooldown', now);
  }

  sync(live: string[], inFlight: string[], now: number): Promise<SharedTrunk> {
    const names = [...live, ...inFlight].map((id) => this.slotName(id));
    return this.trunkOf('twinSync', this.nodePrefix, this.cfg.lease_ttl_ms, now, live.length, ...names);
  }

  onTrunk(listener: (trunk: SharedTrunk) => void): void {
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const trunk = parseTrunk(safeJson(message));
      if (trunk) listener(trunk);
      else this.log.warn('cluster: ignored an unreadable trunk message from Redis');
    });
  }

  onReady(listener: () => void): void {
    this.client.on('ready', listener);
  }

  async close(): Promise<void> {
    await Promise.all([this.client, this.subscriber].map((c) => c.quit().catch(() => c.disconnect())));
  }

  private async trunkOf(script: keyof typeof SCRIPTS, ...args: (string | number)[]): Promise<SharedTrunk> {
    const trunk = parseTrunk(safeJson(await this.run(script, ...args)));
    if (!trunk) throw new Error('cluster: Redis answered an unreadable trunk state');
    return trunk;
  }

  private run(script: keyof typeof SCRIPTS, ...args: (string | number)[]): Promise<string> {
    this.roundTrips += 1;
    const command = (this.client as unknown as Record<string, Script>)[script]!.bind(this.client);
    return command(...this.keys, this.channel, ...args);
  }
}

function clientOptions(cfg: ClusterConfig, extra: RedisOptions): RedisOptions {
  const tls = cfg.redis_url.startsWith('rediss:') || cfg.tls ? { ca: cfg.tls?.ca, servername: cfg.tls?.servername } : undefined;
  return {
    username: cfg.username, password: cfg.password, tls,
    lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: retryDelay,
    ...extra,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Redis's answer read defensively: anything odd is no trunk at all, never a crash. */
function parseTrunk(value: unknown): SharedTrunk | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const state = TRUNK_STATES.find((s) => s === v.state);
  const numbers = [v.since, v.cooldownUntil, v.active, v.version];
  if (!state || !numbers.every((n) => typeof n === 'number' && Number.isFinite(n))) return undefined;
  const text = (s: unknown) => (typeof s === 'string' && s !== '' ? s : undefined);
  return {
    state, since: v.since as number, cooldownUntil: v.cooldownUntil as number, probeInFlight: v.probeInFlight === true,
    failureNode: text(v.node), lastFailure: text(v.reason), active: v.active as number, version: v.version as number,
  };
}
