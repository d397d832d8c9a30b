/**
 * Real-PBX benchmark: SIPp callers and a SIPp bot against an Asterisk or FreeSWITCH that is already
 * running, several modes side by side (the product, and what a customer would build without it),
 * interleaved per rate. See bench/real-pbx/README.md.
 *
 *   node dist/bench/real-pbx/run.js --pbx asterisk --rates 10,50 --modes diy,product
 *
 * Ends with one line per mode and rate:
 *   real-asterisk mode=default rate=50 calls=250 bridged=250 lost=0 p50_ms=… p95_ms=… p99_ms=…
 *     pbx_cpu_ms_per_call=… product_cpu_ms_per_call=… left_channels=0 left_bridges=0 queue_max=…
 */
import { join } from 'node:path';
import { parseOptions, UsageError, USAGE, type Options } from './args.js';
import type { BenchMode } from './modes.js';
import { connectPbx, sleep, type PbxControl } from './pbx.js';
import { TwinStandIn } from './twin-standin.js';
import { cpuMs, findPbxPid, isAlive, rssMb } from './cpu.js';
import { botUri, productConfig, startProduct, type ProductProcess } from './product.js';
import { runCaller, startBot, type CallerResult } from './sipp.js';
import { parseSip, readPcap, startCapture, type Capture, type SipMessage } from './capture.js';
import { analyse, percentile, rtpArrivals, type CallStats } from './analyse.js';
import { checkTools, cleanups, lockPbx, mediaPort, NumberPool, stopAll, stopChildrenOnSignal, waitDrained } from './harness.js';

const WARMUP_RATE = 30;
const WARMUP_HOLD_MS = 200;

interface Context {
  o: Options;
  pbx: PbxControl;
  pbxPid: number;
  twin: TwinStandIn;
  numbers: NumberPool;
  /** The PBX's CPU when no call runs (ms per s), with the queue polling on: taken out of pbx_cpu. */
  idleCpuMsPerS: number;
}

interface RunResult {
  mode: BenchMode;
  rate: number;
  stats?: CallStats;
  caller?: CallerResult;
  /** PBX CPU of the run, less what it uses when idle over the same time. */
  pbxCpuMs?: number;
  productCpuMs?: number;
  /** The product's RSS (MB) when the measured calls start, and when they have ended. */
  productRssMb?: { start: number; end: number };
  left?: { channels: number; bridges?: number };
  queueMax?: number;
  dropped?: number;
  /** How long the product took to go idle after the warm-up, s (undefined: no product). */
  settledS?: number;
  error?: string;
}

async function main(argv: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message ? `${err.message}\n\n` : ''}${USAGE}`);
    return err.message ? 2 : 0;
  }
  checkTools();
  const unlock = await lockPbx(o);
  cleanups.add(async () => unlock());
  const twin = new TwinStandIn(o.warmupDelayMs);
  await twin.start(o.twinPort);
  const pbx = await connectPbx(o);
  try {
    await pbx.prepare({
      twinUrl: twin.url, token: twin.token, botUri: botUri(o), app: o.app, productSocket: `127.0.0.1:${o.productPort}`,
    }, o.modes.map((m) => m.extension));
    const pbxPid = o.pbxPid ?? findPbxPid(o.pbx);
    const idleCpuMsPerS = await idleCpu(pbx, pbxPid);
    const ctx: Context = { o, pbx, pbxPid, twin, numbers: new NumberPool(), idleCpuMsPerS };
    printPlan(ctx);
    const results: RunResult[] = [];
    for (const rate of o.rates) {
      for (const mode of o.modes) {
        const result = await runOne(ctx, mode, rate);
        results.push(result);
        process.stdout.write(`${humanLine(o, result)}\n`);
      }
    }
    process.stdout.write(`\n${results.map((r) => machineLine(o, r)).join('\n')}\n`);
    return results.some((r) => r.error) ? 1 : 0;
  } finally {
    pbx.close();
    await twin.stop();
    unlock();
  }
}

function printPlan(ctx: Context): void {
  const { o } = ctx;
  process.stdout.write(`real-PBX benchmark: ${o.pbx} at ${o.host}:${o.sipPort} (pid ${ctx.pbxPid}), bot ${botUri(o)}, `
    + `Twin stand-in ${ctx.twin.url}\n`
    + `modes ${o.modes.map((m) => `${m.name}(${m.extension}${m.product ? ', product' : ''})`).join(' ')}; `
    + `rates ${o.rates.join(',')}/s for ${o.durationS} s, hold ${o.holdS} s; files in ${o.out}\n`
    + `PBX idle CPU ${num(ctx.idleCpuMsPerS, 2)} ms/s${o.pbx === 'asterisk' ? ' (with the task-queue polling)' : ''}: `
    + 'taken out of pbx_cpu_ms_per_call\n\n');
}

/**
 * The PBX's own idle CPU (timers; for Asterisk also the CLI polls the runner makes during each run),
 * so that pbx_cpu_ms_per_call is what the calls cost, and low rates are not dominated by idle time.
 */
async function idleCpu(pbx: PbxControl, pid: number): Promise<number> {
  const IDLE_MS = 5000;
  const watch = await pbx.queueWatch?.();
  const before = cpuMs(pid);
  const started = Date.now();
  await sleep(IDLE_MS);
  const used = cpuMs(pid) - before;
  const elapsed = Date.now() - started;
  await watch?.stop();
  return (used * 1000) / elapsed;
}

/** One mode at one rate: product and bot up, a few unmeasured calls, then the measured calls. */
async function runOne(ctx: Context, mode: BenchMode, rate: number): Promise<RunResult> {
  const name = `${mode.name}-r${rate}`;
  let product: ProductProcess | undefined;
  let stopBot: (() => Promise<void>) | undefined;
  try {
    await waitDrained(ctx.pbx, ctx.o.drainS);
    if (mode.product) {
      product = await startProduct(ctx.o, productConfig(ctx.o, ctx.twin, mode), {
        config: join(ctx.o.out, `${name}.product.yaml`), log: join(ctx.o.out, `${name}.product.log`),
      });
      cleanups.add(product.stop);
    }
    stopBot = (await startBot(ctx.o.out, ctx.o.host, ctx.o.botPort, mediaPort(ctx.o.botPort))).stop;
    cleanups.add(stopBot);
    await warmUp(ctx, mode, name);
    const settledS = product ? await settle(product.pid) : undefined;
    const result = { ...(await measure(ctx, mode, rate, name, product)), settledS };
    const died = product?.died();
    return died ? { ...result, error: `the product died during the run: ${died.split('\n').pop()}` } : result;
  } catch (err) {
    return { mode, rate, error: (err as Error).message };
  } finally {
    if (stopBot) { await stopBot(); cleanups.delete(stopBot); }
    if (product) { await product.stop(); cleanups.delete(product.stop); }
  }
}

/** Unmeasured calls first: the product's JIT and connections warm, and a broken mode shows up early. */
async function warmUp(ctx: Context, mode: BenchMode, name: string): Promise<void> {
  if (ctx.o.warmupCalls <= 0) return;
  const r = await runCaller(callerRun(ctx, mode, `${name}-warmup`, ctx.numbers.take(ctx.o.warmupCalls), WARMUP_RATE, WARMUP_HOLD_MS));
  if (!(r.successful > 0)) {
    throw new Error(`no warm-up call of ${mode.name} (extension ${mode.extension}) succeeded; see ${join(ctx.o.out, `${name}-warmup`)}.*`);
  }
  await waitDrained(ctx.pbx, ctx.o.drainS);
}

/**
 * A freshly started Node process keeps compiling and collecting in the background for ~15 s
 * (measured: 11-13 ms/s of CPU at 3 s after start, 2 ms/s at 15 s), which would be billed to the
 * calls: wait until the product uses at most one clock tick per second, for at most 20 s.
 */
async function settle(pid: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < 20_000) {
    const before = cpuMs(pid);
    await sleep(1000);
    if (cpuMs(pid) - before <= 10) break;
  }
  return (Date.now() - started) / 1000;
}

async function measure(ctx: Context, mode: BenchMode, rate: number, name: string, product?: ProductProcess): Promise<RunResult> {
  const { o, pbx, pbxPid } = ctx;
  const numbers = ctx.numbers.take(Math.round(rate * o.durationS));
  const pcap = join(o.out, `${name}.pcap`);
  const watch = await pbx.queueWatch?.();
  let capture: Capture | undefined;
  try {
    capture = await startCapture(pcap, o.iface, o.sipPort, mediaPort(o.callerPort));
    const cpu0 = { pbx: cpuMs(pbxPid), product: product ? cpuMs(product.pid) : 0, at: Date.now() };
    const rss0 = product ? rssMb(product.pid) : undefined;

    const caller = await runCaller(callerRun(ctx, mode, name, numbers, rate, o.holdS * 1000));
    await sleep(o.leftAfterS * 1000); // "left" = what the PBX still holds then
    const left = await pbx.leftovers();

    if (!isAlive(pbxPid)) throw new Error(`the PBX (pid ${pbxPid}) is gone`);
    const cpu1 = { pbx: cpuMs(pbxPid), product: product && isAlive(product.pid) ? cpuMs(product.pid) : cpu0.product, at: Date.now() };
    const rss1 = product && isAlive(product.pid) ? rssMb(product.pid) : undefined;
    const queueMax = await watch?.stop();
    const { dropped } = await capture.stop();
    capture = undefined;
    const packets = readPcap(pcap);
    const messages = packets.map(parseSip).filter((m): m is SipMessage => m !== undefined);
    const stats = analyse(messages, { pbx: o.sipPort, bot: o.botPort, caller: o.callerPort }, numbers, ctx.twin.numberById,
      ctx.twin.delayByNumber, rtpArrivals(packets, mediaPort(o.callerPort)));
    return {
      mode, rate, stats, caller, left, queueMax, dropped,
      pbxCpuMs: cpu1.pbx - cpu0.pbx - (ctx.idleCpuMsPerS * (cpu1.at - cpu0.at)) / 1000,
      productCpuMs: cpu1.product - cpu0.product,
      productRssMb: rss0 !== undefined && rss1 !== undefined ? { start: rss0, end: rss1 } : undefined,
    };
  } finally {
    // Stopping twice is harmless; leaving tcpdump or the CLI polls running is not.
    await watch?.stop();
    await capture?.stop();
  }
}

function callerRun(ctx: Context, mode: BenchMode, name: string, numbers: string[], rate: number, holdMs: number) {
  const { o } = ctx;
  return {
    pbxHost: o.host, pbxPort: o.sipPort, host: o.host, port: o.callerPort, mediaPort: mediaPort(o.callerPort),
    extension: mode.extension, numbers, rate, holdMs, extraHeaders: o.callerHeaders, dir: o.out, name,
  };
}

// ---- output ----------------------------------------------------------------------------------

function num(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? 'na' : n.toFixed(digits).replace(/\.0+$/, '');
}

function latency(r: RunResult): { p50: number; p95: number; p99: number } {
  const sorted = [...(r.stats?.latenciesMs ?? [])].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
}

function perCall(ms: number | undefined, r: RunResult): number | undefined {
  return ms === undefined || !r.stats?.calls ? undefined : ms / r.stats.calls;
}

function humanLine(o: Options, r: RunResult): string {
  const head = `${o.pbx} ${r.mode.name.padEnd(10)} rate=${String(r.rate).padEnd(4)}`;
  if (r.error || !r.stats) return `${head} FAILED: ${r.error}`;
  const s = r.stats;
  const l = latency(r);
  const why = s.lost ? ` (no 200: ${s.reasons.noAnswer}, sent to the fallback: ${s.reasons.fallback}, no bot INVITE: ${s.reasons.noBotInvite}, bot not answered: ${s.reasons.botNotAnswered}, PBX hung up caller: ${s.reasons.pbxHungUpCaller})` : '';
  const sipp = r.caller ? `, sipp caller ok/failed ${r.caller.successful}/${r.caller.failed}` : '';
  const left = `left ${r.left?.channels} channels${r.left?.bridges !== undefined ? ` ${r.left.bridges} bridges` : ''}`;
  const queue = o.pbx === 'asterisk' ? `, stasis queue max ${num(r.queueMax, 0)}` : '';
  const dropped = r.dropped ? `, CAPTURE DROPPED ${r.dropped} packets` : '';
  const settled = r.settledS !== undefined ? `; product idle ${num(r.settledS, 0)} s after the warm-up` : '';
  const rss = r.productRssMb ? `; product RSS ${num(r.productRssMb.start)} → ${num(r.productRssMb.end)} MB` : '';
  const ringback = o.warmupDelayMs ? `; ringback heard ${s.ringbackHeard}/${s.bridged}` : '';
  return `${head} calls ${s.calls} bridged ${s.bridged} lost ${s.lost}${why}${sipp}; answer→bot INVITE p50/p95/p99 `
    + `${num(l.p50)}/${num(l.p95)}/${num(l.p99)} ms; CPU ms/call PBX ${num(perCall(r.pbxCpuMs, r), 2)} product `
    + `${num(perCall(r.productCpuMs, r), 2)}; ${left}${queue}${dropped}${settled}${rss}${ringback}`;
}

function machineLine(o: Options, r: RunResult): string {
  const head = `real-${o.pbx} mode=${r.mode.name} rate=${r.rate}`;
  if (r.error || !r.stats) return `${head} error="${(r.error ?? 'no result').split('\n')[0]!.replace(/"/g, "'")}"`;
  const l = latency(r);
  const fields = [
    head, `calls=${r.stats.calls}`, `bridged=${r.stats.bridged}`, `lost=${r.stats.lost}`, `fallback=${r.stats.reasons.fallback}`,
    `p50_ms=${num(l.p50)}`, `p95_ms=${num(l.p95)}`, `p99_ms=${num(l.p99)}`,
    `pbx_cpu_ms_per_call=${num(perCall(r.pbxCpuMs, r), 2)}`, `product_cpu_ms_per_call=${num(perCall(r.productCpuMs, r), 2)}`,
    `left_channels=${r.left?.channels ?? 'na'}`,
  ];
  if (o.warmupDelayMs) fields.splice(1, 0, `warmup_ms=${o.warmupDelayMs.min}-${o.warmupDelayMs.max}`);
  if (o.warmupDelayMs) fields.push(`ringback_heard=${r.stats.ringbackHeard}`);
  if (r.productRssMb) fields.push(`product_rss_mb=${num(r.productRssMb.start)}-${num(r.productRssMb.end)}`);
  if (o.pbx === 'asterisk') fields.push(`left_bridges=${r.left?.bridges ?? 'na'}`, `queue_max=${num(r.queueMax, 0)}`);
  return fields.join(' ');
}

stopChildrenOnSignal();

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  async (err: Error) => {
    await stopAll();
    process.stderr.write(`real-pbx bench: ${err.message}\n`);
    process.exitCode = 1;
  },
);
