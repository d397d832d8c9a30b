/**
 * Call-setup benchmark for each PBX driver: the real daemon in this process, the simulators in a
 * child process (bench/sims.ts). Prints a table per PBX, each ending with one machine-readable line:
 *   asterisk setups_per_s=N p99_added_ms=N requests_per_call=N heap_per_call_kb=N
 *   freeswitch setups_per_s=N p99_added_ms=N requests_per_call=N heap_per_call_kb=N
 * (Asterisk: ARI requests up to the bot's dial; FreeSWITCH: ESL commands per call.)
 * Run with: npm run bench [-- asterisk|freeswitch]   (node --expose-gc is set by the script)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
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

async function bench(kind: PbxKind): Promise<void> {
  const simsFile = fileURLToPath(new URL(`./sims.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url));
  const child = fork(simsFile, [kind], { execArgv: import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [] });
  const ready = await new Promise<Ready>((resolve) => child.once('message', (m) => resolve(m as Ready)));
  const config = parseConfig({
    log: { level: 'silent' },
    twin: { iam_url: ready.twinUrl, cis_url: ready.twinUrl, email: ready.email, password: ready.password, sip: { uri: 'sip:twinbot@127.0.0.1:5070' } },
    ...(kind === 'asterisk'
      ? { asterisk: { url: ready.ariUrl, username: ready.ariUser, password: ready.ariPassword, app: 'twin' } }
      : { freeswitch: { listen_port: 0, esl_port: ready.eslPort, esl_password: ready.eslPassword } }),
    trunk: { max_concurrent_calls: 100_000, max_calls_per_second: 100_000 },
    routes: { default: { bot: 'bench' } },
  }, {});
  const daemon = new Daemon(config, { log: silentLogger });
  await daemon.start();
  if (daemon.freeswitch) await ask(child, { cmd: 'target', port: daemon.freeswitch.listenPort });

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

const only = process.argv[2];
for (const kind of ['asterisk', 'freeswitch'] as const) {
  if (only === undefined || only === kind) await bench(kind);
}
