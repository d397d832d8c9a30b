/**
 * Call-setup benchmark for the Asterisk driver: the real daemon in this process, the simulators in
 * a child process (bench/sims.ts). Prints a table and ends with one machine-readable line:
 *   asterisk setups_per_s=N p99_added_ms=N requests_per_call=N heap_per_call_kb=N
 * Run with: npm run bench   (node --expose-gc is set by the script)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { Daemon } from '../src/daemon.js';
import type { BenchCommand, RunReport } from './sims.js';

const THROUGHPUT_CALLS = Number(process.env.BENCH_CALLS ?? 4000);
const PACED_RATE = 200;
const PACED_CALLS = Number(process.env.BENCH_PACED_CALLS ?? 2000);
const HELD_CALLS = Number(process.env.BENCH_HELD_CALLS ?? 2000);

interface Ready { cmd: 'ready'; ariUrl: string; twinUrl: string; email: string; password: string; ariUser: string; ariPassword: string }

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

async function main(): Promise<void> {
  const simsFile = fileURLToPath(new URL(`./sims.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url));
  const child = fork(simsFile, { execArgv: import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [] });
  const ready = await new Promise<Ready>((resolve) => child.once('message', (m) => resolve(m as Ready)));
  const config = parseConfig({
    log: { level: 'silent' },
    twin: { iam_url: ready.twinUrl, cis_url: ready.twinUrl, email: ready.email, password: ready.password, sip: { uri: 'sip:twinbot@127.0.0.1:5070' } },
    asterisk: { url: ready.ariUrl, username: ready.ariUser, password: ready.ariPassword, app: 'twin' },
    trunk: { max_concurrent_calls: 100_000, max_calls_per_second: 100_000 },
    routes: { default: { bot: 'bench' } },
  }, {});
  const daemon = new Daemon(config, { log: silentLogger });
  await daemon.start();
  const rest = daemon.asterisk!.rest;

  await ask<RunReport>(child, { cmd: 'run', calls: 300, ratePerS: 0, maxInFlight: 100, holdMs: 0 }); // JIT warm-up

  const before = rest.totalRequests();
  const cpuBefore = process.cpuUsage();
  const burst = await ask<RunReport>(child, { cmd: 'run', calls: THROUGHPUT_CALLS, ratePerS: 0, maxInFlight: 200, holdMs: 0 });
  await waitIdle(daemon);
  const productRequests = (rest.totalRequests() - before) / THROUGHPUT_CALLS;
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
  const leftovers = await ask<{ channels: string[]; bridges: string[] }>(child, { cmd: 'leftovers' });

  const heapPerCallKb = ((heapHeld - heapStart) * 1024) / Math.max(1, active);
  const upToDial = percentile(burst.requestsUpToDial, 50);
  const rows: [string, string][] = [
    ['call setups per second (burst, 200 in flight)', setupsPerS.toFixed(0)],
    [`added latency p50 / p99 at ${PACED_RATE} setups/s (ms)`, `${percentile(paced.addedMs, 50).toFixed(2)} / ${percentile(paced.addedMs, 99).toFixed(2)}`],
    ['added latency p50 / p99 in the burst (ms)', `${percentile(burst.addedMs, 50).toFixed(2)} / ${percentile(burst.addedMs, 99).toFixed(2)}`],
    ['ARI requests from StasisStart to the bot dial (median, max)', `${upToDial}, ${Math.max(...burst.requestsUpToDial)}`],
    ['ARI requests per call, total (product side)', productRequests.toFixed(2)],
    ['CPU per call in the burst: product / simulators (ms)', `${productCpuPerCall.toFixed(2)} / ${simCpuPerCall.toFixed(2)}`],
    [`heap per active call (${active} bridged calls held)`, `${heapPerCallKb.toFixed(1)} KB`],
    ['heap at start / with calls / after the run (MB)', `${heapStart.toFixed(1)} / ${heapHeld.toFixed(1)} / ${heapEnd.toFixed(1)}`],
    ['channels or bridges left in Asterisk', String(leftovers.channels.length + leftovers.bridges.length)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  process.stdout.write(`asterisk setups_per_s=${setupsPerS.toFixed(0)} p99_added_ms=${percentile(paced.addedMs, 99).toFixed(2)} `
    + `requests_per_call=${upToDial} heap_per_call_kb=${heapPerCallKb.toFixed(1)}\n`);

  await daemon.stop();
  child.kill();
}

async function waitIdle(daemon: Daemon): Promise<void> {
  while (daemon.activeCalls > 0) await new Promise((r) => setTimeout(r, 20));
}

await main();
