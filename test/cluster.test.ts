/**
 * Several nodes, one Twin budget: three daemons with their own simulators share a real Redis.
 * The product's clock is a ManualClock shared by the nodes (cool-downs, the rate window); Redis
 * leases run on Redis's real time and are kept short here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RedisBudget } from '../src/cluster/redis-budget.js';
import { ManualClock } from '../src/clock.js';
import { createLogger } from '../src/log.js';
import type { SimCall } from '../src/sim/call-model.js';
import { Lab } from '../src/sim/lab.js';
import { captureLog, waitFor } from './helpers.js';
import { liveSlots, redisForTests } from './redis-server.js';

const redis = redisForTests();
let labs: Lab[] = [];
let clusterSeq = 0;

/** Every caller placed: hung up after each test, as a daemon on a ManualClock waits for live calls to stop. */
let placed: SimCall[] = [];

afterEach(async () => {
  for (const call of placed) call.hangup();
  placed = [];
  await Promise.all(labs.map((lab) => lab.stop()));
  labs = [];
});

interface NodeOptions {
  trunk?: Record<string, number>;
  share?: { max_concurrent_calls: number; max_calls_per_second: number };
  log?: ReturnType<typeof createLogger>;
  /** Join this cluster instead of a new one, with nodes numbered from `firstNode`. */
  join?: { name: string; firstNode: number };
}

/** `count` nodes of one new cluster (or of `options.join`), each with its Twin and Asterisk simulators. */
async function startCluster(count: number, clock: ManualClock, options: NodeOptions = {}): Promise<{ name: string; nodes: Lab[] }> {
  const name = options.join?.name ?? `c${++clusterSeq}`;
  const first = options.join?.firstNode ?? 0;
  const nodes = await Promise.all(Array.from({ length: count }, (_, i) => Lab.start({
    clock,
    log: i === 0 ? options.log : undefined,
    config: {
      http: { listen_port: 0 },
      trunk: { cooldown_s: 10, max_concurrent_calls: 100, max_calls_per_second: 1000, ...options.trunk },
      cluster: {
        redis_url: redis.url, name, node: `node-${first + i}`, lease_ttl_ms: 900,
        local_share: options.share ?? { max_concurrent_calls: 3, max_calls_per_second: 10 },
      },
    },
  })));
  labs.push(...nodes);
  return { name, nodes };
}

/** Connected (bridged to the bot, still up) or refused (left the product): waits until it is one or the other. */
async function decided(lab: Lab, call: SimCall): Promise<'connected' | 'refused'> {
  let left = false;
  void call.left.then(() => { left = true; });
  return waitFor(() => (lab.pbx().channelVar(call.id, 'TWIN_STATUS') === 'CONNECTED' ? 'connected' : left ? 'refused' : undefined), 'the call to be connected or refused');
}

async function burst(nodes: Lab[], perNode: number): Promise<{ node: Lab; call: SimCall; result: 'connected' | 'refused' }[]> {
  const calls = nodes.flatMap((node) => Array.from({ length: perNode }, () => ({ node, call: node.pbx().placeCall() })));
  placed.push(...calls.map((c) => c.call));
  return Promise.all(calls.map(async ({ node, call }) => ({ node, call, result: await decided(node, call) })));
}

async function json(lab: Lab, path: string): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}${path}`);
  return res.headers.get('content-type')?.includes('json') ? res.json() : res.text();
}

describe('a cluster of three nodes on one Redis', () => {
  it('never exceeds the shared concurrency in a burst, and frees the slots when the calls end', async () => {
    const { name, nodes } = await startCluster(3, new ManualClock(), { trunk: { max_concurrent_calls: 5 } });
    const results = await burst(nodes, 6);
    const connected = results.filter((r) => r.result === 'connected');
    expect(connected).toHaveLength(5);
    const client = redis.client();
    expect(await liveSlots(client, name)).toBe(5);
    for (const node of nodes) expect(node.daemon.gate.snapshot()).toMatchObject({ active: 5, atCapacity: true });
    for (const { call } of connected) call.hangup();
    await waitFor(async () => (await liveSlots(client, name)) === 0, 'every slot to be given back');
    client.disconnect();
  });

  it('a lease renewal that crosses a refused admission does not take the refused slot (CI saw 6 live slots of 5)', async () => {
    const name = `c${++clusterSeq}`;
    const budget = new RedisBudget({
      redis_url: redis.url, name, node: 'node-0', lease_ttl_ms: 5000, command_timeout_ms: 1000,
      local_share: { max_concurrent_calls: 1, max_calls_per_second: 10 },
    }, createLogger({ level: 'silent' }));
    await budget.connect();
    const limits = { maxConcurrent: 1, maxPerSecond: 100, cooldownMs: 10_000 };
    expect(await budget.admit('a', 0, limits)).toMatchObject({ admitted: true });
    // The node's renewal timer fires while b's admission is on its way: Redis runs the admission
    // (refused: the cluster is full), then the sync, which names b as in flight.
    const [refused] = await Promise.all([budget.admit('b', 0, limits), budget.sync(['a'], ['b'], 0)]);
    expect(refused).toMatchObject({ admitted: false, status: 'BUSY' });
    const client = redis.client();
    expect(await liveSlots(client, name)).toBe(1);
    // An admission in flight that Redis did take is kept by the same sync.
    await budget.release('a', 0, limits);
    const [taken] = await Promise.all([budget.admit('c', 0, limits), budget.sync([], ['c'], 0)]);
    expect(taken).toMatchObject({ admitted: true });
    expect(await client.zrange(`twin:{${name}}:slots`, 0, -1)).toEqual(['node-0|c']);
    client.disconnect();
    await budget.close();
  });

  it('never exceeds the shared calls per second, dialer API and inbound calls alike', async () => {
    const clock = new ManualClock();
    const { nodes } = await startCluster(3, clock, { trunk: { max_calls_per_second: 4 } });
    const results = await burst(nodes, 3);
    expect(results.filter((r) => r.result === 'connected')).toHaveLength(4);
    // The same second: an outbound call through the dialer API is over the rate too.
    const outbound = nodes[1]!.daemon.placeCall({ to: '+15550001111', from: '+15550002222', pbx: 'asterisk', variables: {}, record: false });
    expect((await outbound.result).status).toBe('over-capacity');
    clock.advance(1000);
    const next = await burst(nodes, 2);
    expect(next.filter((r) => r.result === 'connected')).toHaveLength(4);
    for (const { call, result } of [...results, ...next]) if (result === 'connected') call.hangup();
  });

  it('closes every node when one sees Twin fail, and one probe reopens all three', async () => {
    const clock = new ManualClock();
    const { nodes } = await startCluster(3, clock);
    nodes[0]!.twin.script(() => ({ kind: 'status', status: 503 }));
    const failing = nodes[0]!.pbx().placeCall();
    await failing.left;
    for (const node of nodes) await waitFor(() => node.pbx().trunkState() === 'UNAVAILABLE', 'every PBX to show the trunk closed');
    const trunk = await json(nodes[2]!, '/v1/trunk');
    expect(trunk).toMatchObject({ state: 'throttled', lastFailure: expect.stringContaining('503'), cluster: { node: 'node-2', failureNode: 'node-0', connected: true } });
    expect(await json(nodes[1]!, '/readyz')).toEqual({ ready: false, reasons: ['twin_trunk_throttled'] });
    expect(await json(nodes[1]!, '/metrics')).toContain('twin_connector_cluster_trunk_closed_by{node="node-0"} 1');

    clock.advance(10_000); // the cool-down ends once, for the cluster
    for (const node of nodes) await waitFor(() => node.daemon.gate.snapshot().state === 'probing' && node.pbx().trunkState() !== 'UNAVAILABLE', 'every node to wait for the probe');
    for (const node of nodes) node.twin.script(() => ({ kind: 'slow', delayMs: 200 }));
    const results = await burst(nodes, 1);
    expect(results.filter((r) => r.result === 'connected')).toHaveLength(1); // exactly one probe, cluster-wide
    expect(nodes.reduce((sum, node) => sum + node.twin.warmups.length, 0)).toBe(2); // the failed call and the probe
    for (const node of nodes) await waitFor(() => node.daemon.gate.snapshot().state === 'open' && node.pbx().trunkState() === 'NOT_INUSE', 'every node to reopen');
    for (const { call, result } of results) if (result === 'connected') call.hangup();
  });

  it('falls back to the local share when Redis stops, loses no call, and rejoins when it is back', async () => {
    const log = captureLog();
    const { name, nodes } = await startCluster(2, new ManualClock(), {
      log: createLogger({ level: 'info', destination: log.stream }),
      trunk: { max_concurrent_calls: 10 }, share: { max_concurrent_calls: 3, max_calls_per_second: 10 },
    });
    const [a] = nodes as [Lab, Lab];
    const before = await burst([a], 2);
    expect(before.every((r) => r.result === 'connected')).toBe(true);

    await redis.stop();
    const during = [await burst([a], 1), await burst([a], 1)].flat(); // its share is 3 calls: 2 live + 1 more
    expect(during.map((r) => r.result)).toEqual(['connected', 'refused']);
    expect(await json(a, '/readyz')).toMatchObject({ ready: true, degraded: ['cluster_unreachable'] });
    expect(await json(a, '/metrics')).toContain('twin_connector_cluster_connected 0');
    expect(log.lines().filter((l) => /Redis unreachable/.test(l.msg))).toHaveLength(1);
    for (const r of before) expect(a.pbx().channelVar(r.call.id, 'TWIN_STATUS')).toBe('CONNECTED'); // no call lost

    await redis.start();
    await waitFor(() => a.daemon.gate.snapshot().cluster?.connected, 'the node to rejoin', 10_000);
    const client = redis.client();
    await waitFor(async () => (await liveSlots(client, name)) === 3, 'the live calls\' leases to be taken again');
    expect(await json(a, '/readyz')).toEqual({ ready: true, reasons: [] });
    for (const r of [...before, ...during]) if (r.result === 'connected') r.call.hangup();
    await waitFor(async () => (await liveSlots(client, name)) === 0, 'every slot to be given back');
    expect((await a.outcomesReached(4)).map((o) => o.status).sort()).toEqual(['BUSY', 'CONNECTED', 'CONNECTED', 'CONNECTED']);
    client.disconnect();
  });

  it('reopens by itself when the cool-down ended while Redis was away (paused, or restarted empty)', async () => {
    const clock = new ManualClock();
    const { nodes } = await startCluster(2, clock);
    const [a, b] = nodes as [Lab, Lab];
    a.twin.script(() => ({ kind: 'status', status: 503 }));
    await a.pbx().placeCall().left;
    for (const node of nodes) await waitFor(() => node.pbx().trunkState() === 'UNAVAILABLE', 'the trunk closed everywhere');

    // Redis stops answering just as the cool-down ends: every node's timer fires into the void.
    const client = redis.client();
    await client.call('CLIENT', 'PAUSE', '1500', 'ALL');
    await waitFor(() => !a.daemon.gate.snapshot().cluster?.connected && !b.daemon.gate.snapshot().cluster?.connected, 'both nodes to notice');
    clock.advance(10_000);
    await waitFor(() => a.daemon.gate.snapshot().cluster?.connected && b.daemon.gate.snapshot().cluster?.connected, 'both nodes to rejoin', 5000);
    for (const node of nodes) await waitFor(() => node.daemon.gate.snapshot().state === 'probing' && node.pbx().trunkState() !== 'UNAVAILABLE', 'the cluster to probe');

    // Throttled again, then Redis dies and comes back empty (no persistence): its version starts over.
    b.twin.script(() => ({ kind: 'status', status: 503 }));
    await b.pbx().placeCall().left;
    for (const node of nodes) await waitFor(() => node.pbx().trunkState() === 'UNAVAILABLE', 'the trunk closed again');
    client.disconnect();
    await redis.stop();
    await redis.start();
    for (const node of nodes) await waitFor(() => node.daemon.gate.snapshot().cluster?.connected && node.daemon.gate.snapshot().state === 'open', 'the empty Redis\'s open trunk to win', 10_000);
    for (const node of nodes) await waitFor(() => node.pbx().trunkState() === 'NOT_INUSE', 'every PBX to show it');
  });

  it('an outbound probe that fails closes the trunk again for a cool-down (its verdict goes before its release)', async () => {
    const clock = new ManualClock();
    const { nodes } = await startCluster(1, clock);
    const [a] = nodes as [Lab];
    a.twin.script(() => ({ kind: 'status', status: 503 }));
    await a.pbx().placeCall().left;
    await waitFor(() => a.daemon.gate.snapshot().state === 'throttled', 'throttled');
    clock.advance(10_000);
    await waitFor(() => a.daemon.gate.snapshot().state === 'probing', 'probing');
    const outbound = a.daemon.placeCall({ to: '+15550001111', from: '+15550002222', pbx: 'asterisk', variables: {}, record: false });
    expect((await outbound.result).status).toBe('unavailable');
    await waitFor(() => a.daemon.gate.snapshot().state === 'throttled', 'throttled again by the failed probe');
    expect(a.daemon.gate.snapshot().cooldownUntil).toBe(clock.now() + 10_000);
  });

  it('tells since when the cluster\'s trunk has been in its state, as Redis knows it: a fresh cluster is not open since 1970 (issue 22, item 4)', async () => {
    const clock = new ManualClock();
    const formed = new Date(clock.now()).toISOString();
    const { name, nodes: [a] } = await startCluster(1, clock);
    expect(await json(a!, '/v1/trunk')).toMatchObject({ state: 'open', since: formed });

    clock.advance(60_000); // a node joining later sees the cluster's since, not its own start
    const { nodes: [late] } = await startCluster(1, clock, { join: { name, firstNode: 1 } });
    expect(await json(late!, '/v1/trunk')).toMatchObject({ state: 'open', since: formed });

    clock.advance(5_000);
    late!.twin.script(() => ({ kind: 'status', status: 503 }));
    await late!.pbx().placeCall().left;
    const closed = new Date(clock.now()).toISOString();
    for (const node of [a!, late!]) {
      await waitFor(() => node.daemon.gate.snapshot().state === 'throttled', 'every node to see the trunk closed');
      expect(await json(node, '/v1/trunk')).toMatchObject({ state: 'throttled', since: closed });
    }
  });
});
