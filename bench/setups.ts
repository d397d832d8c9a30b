/**
 * Call-setup benchmark for each PBX driver: the real daemon in this process, the simulators in a
 * child process (bench/sims.ts). Prints a table per PBX, each ending with one machine-readable line:
 *   asterisk setups_per_s=N p99_added_ms=N requests_per_call=N heap_per_call_kb=N
 *   freeswitch setups_per_s=N p99_added_ms=N requests_per_call=N heap_per_call_kb=N
 *   cluster nodes=3 setups_per_s=500 p99_added_ms_single=N p99_added_ms_cluster=N p99_cost_ms=N p50_cost_ms=N redis_round_trips_per_call=N
 * (Asterisk: ARI requests up to the bot's dial; FreeSWITCH: ESL commands per call. cluster: three
 * Asterisk nodes at 500 setups/s in all, first each on its own gate, then sharing one real
 * redis-server; round trips are all Redis commands over the calls, lease renewals included.)
 * Run with: npm run bench [-- asterisk|freeswitch|cluster]   (node --expose-gc is set by the script)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { ClusterGate } from '../src/cluster/cluster-gate.js';
import { RedisServer } from '../src/sim/redis-server.js';
import { silentLogger } from '../src/log.js';
import { Daemon } from '../src/daemon.js';
import type { BenchCommand, Ready, RunReport } from './sims.js';

const THROUGHPUT_CALLS = Number(process.env.BENCH_CALLS ?? 4000);
const PACED_RATE = 200;
const PACED_CALLS = Number(process.env.BENCH_PACED_CALLS ?? 2000);
const HELD_CALLS = Number(process.env.BENCH_HELD_CALLS ?? 2000);

type PbxKind = 'asterisk' | 'freeswitch';

function ask<T>(child: ChildProcess, msg: BenchCommand): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(msg);
  });
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function heapMb(): number {
  global.gc?.();
  global.gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

async function startSims(kind: PbxKind): Promise<{ child: ChildProcess; ready: Ready }> {
  const simsFile = fileURLToPath(new URL(`./sims.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url));
  const child = fork(simsFile, [kind], { execArgv: import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [] });
  const ready = await new Promise<Ready>((resolve) => child.once('message', (m) => resolve(m as Ready)));
  return { child, ready };
}

async function startDaemon(kind: PbxKind, ready: Ready, child: ChildProcess, extra: Record<string, unknown> = {}): Promise<Daemon> {
  const config = parseConfig({
    log: { level: 'silent' },
    twin: { iam_url: ready.twinUrl, cis_url: ready.twinUrl, email: ready.email, password: ready.password, sip: { uri: 'sip:twinbot@127.0.0.1:5070' } },
    ...(kind === 'asterisk'
      // bridge, as the README's table says: the simulator harness counts the bot dial of that mode.
      ? { asterisk: { url: ready.ariUrl, username: ready.ariUser, password: ready.ariPassword, app: 'twin', bot_leg: 'bridge' } }
      : { freeswitch: { listen_port: 0, esl_port: ready.eslPort, esl_password: ready.eslPassword } }),
    trunk: { max_concurrent_calls: 100_000, max_calls_per_second: 100_000 },
    routes: { default: { bot: 'bench' } },
    state: { dir: mkdtempSync(join(tmpdir(), 'twin-bench-state-')) },
    ...extra,
  }, {});
  const daemon = new Daemon(config, { log: silentLogger });
  await daemon.start();
  if (daemon.freeswitch) await ask(child, { cmd: 'target', port: daemon.freeswitch.listenPort });
  return daemon;
}

async function bench(kind: PbxKind): Promise<void> {
  const { child, ready } = await startSims(kind);
  const daemon = await startDaemon(kind, ready, child);

  await ask<RunReport>(child, { cmd: 'run', calls: 300, ratePerS: 0, maxInFlight: 100, holdMs: 0 }); // JIT warm-up

  const cpuBefore = process.cpuUsage();
  const burst = await ask<RunReport>(child, { cmd: 'run', calls: THROUGHPUT_CALLS, ratePerS: 0, maxInFlight: 200, holdMs: 0 });
  await waitIdle(daemon);
  const requestsPerCall = burst.requestsTotal / THROUGHPUT_CALLS;
  const cpu = process.cpuUsage(cpuBefore);
  const productCpuPerCall = (cpu.user + cpu.system) / 1000 / THROUGHPUT_CALLS;
  const simCpuPerCall = burst.cpuMs / THROUGHPUT_CALLS;
  const setupsPerS = burst.connected / ((burst.elapsedMs - 200) / 1000);

  const paced = await ask<RunReport>(child, { cmd: 'run', calls: PACED_CALLS, ratePerS: PACED_RATE, maxInFlight: Infinity, holdMs: 20 });
  await waitIdle(daemon);

  const heapStart = heapMb();
  await ask<RunReport>(child, { cmd: 'run', calls: HELD_CALLS, ratePerS: 0, maxInFlight: 200, holdMs: -1 });
  const heapHeld = heapMb();
  const active = daemon.activeCalls;
  await ask(child, { cmd: 'hangupAll' });
  await waitIdle(daemon);
  const heapEnd = heapMb();
  const { leftovers } = await ask<{ leftovers: string[] }>(child, { cmd: 'leftovers' });

  const heapPerCallKb = ((heapHeld - heapStart) * 1024) / Math.max(1, active);
  const upToDial = percentile(burst.requestsUpToDial, 50);
  const unit = kind === 'asterisk' ? 'ARI requests' : 'ESL commands';
  const rows: [string, string][] = [
    ['call setups per second (burst, 200 in flight)', setupsPerS.toFixed(0)],
    [`added latency p50 / p99 at ${PACED_RATE} setups/s (ms)`, `${percentile(paced.addedMs, 50).toFixed(2)} / ${percentile(paced.addedMs, 99).toFixed(2)}`],
    ['added latency p50 / p99 in the burst (ms)', `${percentile(burst.addedMs, 50).toFixed(2)} / ${percentile(burst.addedMs, 99).toFixed(2)}`],
    [`${unit} from the call's arrival to the bot dial (median, max)`, `${upToDial}, ${Math.max(...burst.requestsUpToDial)}`],
    [`${unit} per call, total`, requestsPerCall.toFixed(2)],
    ['CPU per call in the burst: product / simulators (ms)', `${productCpuPerCall.toFixed(2)} / ${simCpuPerCall.toFixed(2)}`],
    [`heap per active call (${active} bridged calls held)`, `${heapPerCallKb.toFixed(1)} KB`],
    ['heap at start / with calls / after the run (MB)', `${heapStart.toFixed(1)} / ${heapHeld.toFixed(1)} / ${heapEnd.toFixed(1)}`],
    [`left in ${kind === 'asterisk' ? 'Asterisk (channels, bridges)' : 'FreeSWITCH (channels, sockets)'}`, String(leftovers.length)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${kind}\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  const requests = kind === 'asterisk' ? upToDial : Number(requestsPerCall.toFixed(2));
  process.stdout.write(`${kind} setups_per_s=${setupsPerS.toFixed(0)} p99_added_ms=${percentile(paced.addedMs, 99).toFixed(2)} `
    + `requests_per_call=${requests} heap_per_call_kb=${heapPerCallKb.toFixed(1)}\n`);

  await daemon.stop();
  child.kill();
}

async function waitIdle(daemon: Daemon): Promise<void> {
  // FreeSWITCH calls are done once their sockets have closed too.
  while (daemon.activeCalls > 0 || (daemon.freeswitch?.activeCalls ?? 0) > 0) await new Promise((r) => setTimeout(r, 20));
}

const CLUSTER_NODES = 3;
const CLUSTER_RATE = 500;
const CLUSTER_CALLS_PER_NODE = Number(process.env.BENCH_CLUSTER_CALLS ?? 1000);

/**
 * The cluster's cost per call: three nodes (each with its simulators) at 500 setups/s in all, on
 * their own gates, then the same nodes sharing one redis-server; p99 added latency of both runs.
 */
async function benchCluster(): Promise<void> {
  const redis = new RedisServer();
  await redis.start();
  const sims = await Promise.all(Array.from({ length: CLUSTER_NODES }, () => startSims('asterisk')));
  const paced = async (cluster?: Record<string, unknown>) => {
    const daemons = await Promise.all(sims.map(({ child, ready }, i) => startDaemon('asterisk', ready, child,
      cluster ? { cluster: { ...cluster, node: `bench-${i}` } } : {})));
    await Promise.all(sims.map(({ child }) => ask<RunReport>(child, { cmd: 'run', calls: 300, ratePerS: 0, maxInFlight: 100, holdMs: 0 })));
    const reports = await Promise.all(sims.map(({ child }) => ask<RunReport>(child, {
      cmd: 'run', calls: CLUSTER_CALLS_PER_NODE, ratePerS: CLUSTER_RATE / CLUSTER_NODES, maxInFlight: Infinity, holdMs: 20,
    })));
    await Promise.all(daemons.map(waitIdle));
    const trips = daemons.reduce((sum, d) => sum + (d.gate instanceof ClusterGate ? d.gate.roundTrips : 0), 0);
    await Promise.all(daemons.map((d) => d.stop()));
    const calls = (300 + CLUSTER_CALLS_PER_NODE) * CLUSTER_NODES;
    const added = reports.flatMap((r) => r.addedMs);
    return { p50: percentile(added, 50), p99: percentile(added, 99), tripsPerCall: trips / calls };
  };
  await paced(); // the first daemons in this process pay for the JIT: not measured
  const single = await paced();
  const shared = await paced({ redis_url: redis.url, name: 'bench', local_share: { max_concurrent_calls: 1000, max_calls_per_second: 1000 } });
  const cost = shared.p99 - single.p99;
  process.stdout.write(`\ncluster (${CLUSTER_NODES} Asterisk nodes, ${CLUSTER_RATE} setups/s in all, one redis-server)\n`);
  process.stdout.write(`added latency p50, own gates / shared gate (ms)  ${single.p50.toFixed(2)} / ${shared.p50.toFixed(2)}\n`);
  process.stdout.write(`added latency p99, own gates / shared gate (ms)  ${single.p99.toFixed(2)} / ${shared.p99.toFixed(2)}\n`);
  process.stdout.write(`Redis round trips per call (the call waits for 1)  ${shared.tripsPerCall.toFixed(2)}\n`);
  process.stdout.write(`cluster nodes=${CLUSTER_NODES} setups_per_s=${CLUSTER_RATE} p99_added_ms_single=${single.p99.toFixed(2)} `
    + `p99_added_ms_cluster=${shared.p99.toFixed(2)} p99_cost_ms=${cost.toFixed(2)} p50_cost_ms=${(shared.p50 - single.p50).toFixed(2)} redis_round_trips_per_call=${shared.tripsPerCall.toFixed(2)}\n`);
  for (const { child } of sims) child.kill();
  await redis.stop();
}

const only = process.argv[2];
for (const kind of ['asterisk', 'freeswitch'] as const) {
  if (only === undefined || only === kind) await bench(kind);
}
if (only === undefined || only === 'cluster') await benchCluster();
