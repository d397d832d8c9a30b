/**
 * Faults under load on a real PBX (issue 22 item 7): SIPp callers at a steady rate, the SIPp bot,
 * the product and the Twin stand-in as in run.ts, and one fault injected a few seconds in. Each call
 * is classed from the capture (bridged, sent to the fallback, stranded) and checked against the
 * product's outcome lines. See bench/real-pbx/README.md.
 *
 *   node dist/bench/real-pbx/faults.js --pbx asterisk --cli /opt/pbx/asterisk/cli.sh \
 *     --pbx-log /opt/pbx/asterisk/var/log/asterisk/messages.log
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { FAULTS, FAULT_USAGE, parseFaultOptions, UsageError, type FaultName, type FaultOptions } from './fault-args.js';
import { analyseFaultRun, recovery, type FaultStats } from './fault-analyse.js';
import { dropConnections, logSize, readFallbackLines, readOutcomes, TrunkWatch, trunkBackAt, type TrunkSample } from './fault-inputs.js';
import { findPbxPid } from './cpu.js';
import { checkTools, cleanups, lockPbx, mediaPort, NumberPool, stopAll, stopChildrenOnSignal, waitDrained } from './harness.js';
import type { BenchMode } from './modes.js';
import { connectPbx, sleep, type PbxControl } from './pbx.js';
import { botUri, productConfig, spawnProduct, startProduct, type ProductProcess } from './product.js';
import { runCaller, startBot, type BotProcess } from './sipp.js';
import { parseSip, readPcap, startCapture, type SipMessage } from './capture.js';
import { TwinStandIn } from './twin-standin.js';
import { merge } from '../../src/sim/lab.js';
import { EslClient } from './esl.js';

const run = promisify(execFile);
/** "left" = what the PBX still holds this long after the last caller hung up. */
const SETTLE_MS = 2000;
/** Runs measured again after a failure (a PBX restarted under the run). */
const RETRIES = 2;

interface Ctx { o: FaultOptions; pbx: PbxControl; twin: TwinStandIn; numbers: NumberPool }

/** When the fault began and ended (epoch ms), and what happened. */
interface Injected { start: number; end: number; note: string }

interface FaultResult {
  fault: FaultName;
  mode: BenchMode;
  stats?: FaultStats;
  injected?: Injected;
  firstInvite?: number;
  firstBridgedS?: number;
  normalS?: number;
  /** Product's trunk open and ready again, s after the fault ended (undefined: it never left; NaN: not by the end). */
  trunkBackS?: number;
  samples?: TrunkSample[];
  left?: number;
  dropped?: number;
  error?: string;
  dir: string;
}

async function main(argv: string[]): Promise<number> {
  let o: FaultOptions;
  try {
    o = parseFaultOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message ? `${err.message}\n\n` : ''}${FAULT_USAGE}`);
    return err.message ? 2 : 0;
  }
  checkTools();
  const unlock = await lockPbx(o, o.lockWaitS, (pid) => process.stdout.write(`waiting for the real-PBX benchmark of pid ${pid} to finish (the PBX's lock)\n`));
  cleanups.add(async () => unlock());
  const twin = new TwinStandIn(o.warmupDelayMs); // --warmup-ms: a Twin that takes its time, as in run.js
  await twin.start(o.twinPort);
  const pbx = await connectPbx(o);
  try {
    await prepare(o, pbx, twin);
    process.stdout.write(`faults under load: ${o.pbx} at ${o.host}:${o.sipPort}, ${o.rate} calls/s for ${o.durationS} s, fault at ${o.faultAtS} s, `
      + `bot hangs up after ${o.holdS} s, bound ${o.boundS} s, warm-up timeout ${o.warmupTimeoutMs} ms, cool-down ${o.cooldownS} s${o.warmupDelayMs ? `, Twin warm-ups ${o.warmupDelayMs.min}-${o.warmupDelayMs.max} ms` : ''}; files in ${o.out}\n`);
    const ctx: Ctx = { o, pbx, twin, numbers: new NumberPool() };
    const results: FaultResult[] = [];
    for (const fault of o.faults) {
      for (const mode of o.modes) {
        let result = await runOne(ctx, fault, mode);
        // Someone restarted the PBX (another agent's lab work): its globals are gone; measure again.
        for (let retry = 1; retry <= RETRIES && result.error; retry++) {
          process.stdout.write(`${humanLine(result)}\n  trying again (${retry}/${RETRIES})\n`);
          await sleep(5000);
          await prepare(o, pbx, twin);
          result = await runOne(ctx, fault, mode);
        }
        results.push(result);
        process.stdout.write(`${humanLine(result)}\n`);
      }
    }
    process.stdout.write(`\n${results.map((r) => machineLine(o, r)).join('\n')}\n\n${table(results)}\n`);
    return results.some((r) => r.error) ? 1 : 0;
  } finally {
    pbx.close();
    await twin.stop();
    unlock();
  }
}

/** The bench dialplan and its globals (set again after a PBX restart, which loses them). */
async function prepare(o: FaultOptions, pbx: PbxControl, twin: TwinStandIn): Promise<void> {
  await pbx.prepare({
    twinUrl: twin.url, token: twin.token, botUri: botUri(o), app: o.app, productSocket: `127.0.0.1:${o.productPort}`,
  }, o.modes.map((m) => m.extension));
}

async function runOne(ctx: Ctx, fault: FaultName, mode: BenchMode): Promise<FaultResult> {
  const { o } = ctx;
  const name = `${fault}-${mode.name}`;
  const files = { config: join(o.out, `${name}.product.yaml`), log: join(o.out, `${name}.product.log`) };
  const logs = [files.log];
  const products: ProductProcess[] = [];
  const sipps: BotProcess[] = [];
  const base: FaultResult = { fault, mode, dir: join(o.out, name) };
  try {
    await waitDrained(ctx.pbx, o.drainS);
    const pbxPid = o.pbxPid ?? findPbxPid(o.pbx);
    const config = merge(productConfig(o, ctx.twin, mode), {
      log: { level: 'info' }, state: { dir: join(o.out, `${name}.state`) },
      http: { listen_host: '127.0.0.1', listen_port: o.httpPort },
      trunk: { cooldown_s: o.cooldownS }, twin: { warmup_timeout_ms: o.warmupTimeoutMs },
    });
    products.push(await startProduct(o, config, files));
    sipps.push(await startBot(o.out, o.host, o.botPort, mediaPort(o.botPort), { hangUpAfterMs: o.holdS * 1000 }));
    if (o.operatorPort > 0) sipps.push(await startBot(o.out, o.host, o.operatorPort, mediaPort(o.operatorPort), { name: 'operator', hangUpAfterMs: 1000 }));
    for (const p of [...products, ...sipps]) cleanups.add(p.stop);
    await warmUp(ctx, mode, name);

    const numbers = ctx.numbers.take(Math.round(o.rate * o.durationS));
    const pcap = join(o.out, `${name}.pcap`);
    const logFrom = logSize(o.pbxLog);
    const capture = await startCapture(pcap, o.iface, o.sipPort);
    const watch = new TrunkWatch(`http://127.0.0.1:${o.httpPort}`);
    let injected: Injected;
    let left = NaN;
    let samples: TrunkSample[];
    let dropped: number;
    try {
      const t0 = Date.now();
      const injecting = inject(ctx, fault, t0, products, files, logs);
      const caller = runCaller({
        pbxHost: o.host, pbxPort: o.sipPort, host: o.host, port: o.callerPort, mediaPort: mediaPort(o.callerPort),
        extension: mode.extension, numbers, rate: o.rate, holdMs: 0, waitForPbxByeMs: o.boundS * 1000,
        extraHeaders: o.callerHeaders, dir: o.out, name,
      });
      [injected] = await Promise.all([injecting, caller]);
      await sleep(SETTLE_MS);
      left = await ctx.pbx.leftovers().then((l) => l.channels, () => NaN);
    } finally {
      samples = await watch.stop();
      ({ dropped } = await capture.stop());
    }
    const pbxNow = o.pbxPid ?? findPbxPid(o.pbx);
    if (pbxNow !== pbxPid) throw new Error(`the PBX restarted during the run (pid ${pbxPid}, now ${pbxNow}): not measured`);
    ctx.twin.script = [];
    for (const p of [...sipps, ...products]) { await p.stop(); cleanups.delete(p.stop); }

    const messages = readPcap(pcap).map(parseSip).filter((m): m is SipMessage => m !== undefined);
    const lines = readFallbackLines(o.pbxLog, logFrom);
    const ports = { pbx: o.sipPort, bot: o.botPort, caller: o.callerPort, operator: o.operatorPort || undefined };
    const stats = analyseFaultRun(messages, ports, numbers, ctx.twin.numberById, readOutcomes(logs), lines);
    const back = trunkBackAt(samples, injected.start);
    writeFileSync(join(o.out, `${name}.calls.json`), `${JSON.stringify({ injected, samples, fallbackLines: lines, calls: stats.records }, null, 1)}\n`);
    return {
      ...base, stats, injected, samples, left, dropped, ...recovery(stats.records, injected.end),
      firstInvite: Math.min(...stats.records.map((r) => r.invitedAt ?? Infinity)),
      trunkBackS: back === undefined ? undefined : (back - injected.end) / 1000,
    };
  } catch (err) {
    return { ...base, error: (err as Error).message };
  } finally {
    for (const p of [...sipps, ...products]) { await p.stop(); cleanups.delete(p.stop); }
    ctx.twin.script = [];
  }
}

/** Unmeasured calls first (the product's JIT and connections warm; a broken mode fails here). */
async function warmUp(ctx: Ctx, mode: BenchMode, name: string): Promise<void> {
  const { o } = ctx;
  if (o.warmupCalls <= 0) return;
  const r = await runCaller({
    pbxHost: o.host, pbxPort: o.sipPort, host: o.host, port: o.callerPort, mediaPort: mediaPort(o.callerPort),
    extension: mode.extension, numbers: ctx.numbers.take(o.warmupCalls), rate: 30, holdMs: 200,
    extraHeaders: o.callerHeaders, dir: o.out, name: `${name}-warmup`,
  });
  if (!(r.successful > 0)) throw new Error(`no warm-up call of ${mode.name} succeeded; see ${join(o.out, `${name}-warmup`)}.*`);
  await waitDrained(ctx.pbx, o.drainS);
}

/** The fault, at t0 + fault-at-s. */
async function inject(ctx: Ctx, fault: FaultName, t0: number, products: ProductProcess[], files: { config: string; log: string }, logs: string[]): Promise<Injected> {
  const { o } = ctx;
  const start = t0 + o.faultAtS * 1000;
  if (fault === 'twin-500' || fault === 'twin-slow') {
    const end = start + o.faultForS * 1000;
    ctx.twin.script = [fault === 'twin-500'
      ? { from: start, to: end, kind: 'fail', status: o.failStatus }
      : { from: start, to: end, kind: 'slow', delayMs: o.slowMs }];
    return { start, end, note: fault === 'twin-500' ? `Twin answered ${o.failStatus}` : `Twin held warm-ups ${o.slowMs} ms` };
  }
  await sleep(start - Date.now());
  if (fault === 'kill') {
    const killedAt = Date.now();
    await products[0]!.kill('SIGKILL');
    await sleep(killedAt + o.restartAfterS * 1000 - Date.now());
    const log = files.log.replace(/\.log$/, '.restarted.log');
    logs.push(log);
    const restarted = spawnProduct({ config: files.config, log });
    products.push(restarted);
    cleanups.add(restarted.stop);
    return { start: killedAt, end: Date.now(), note: `SIGKILL pid ${products[0]!.pid}, started again as pid ${restarted.pid}` };
  }
  const at = Date.now();
  if (o.drop === 'sockets') {
    const n = await dropConnections(products[products.length - 1]!.pid, o.pbx === 'asterisk' ? portOf(o.ariUrl) : o.eslPort);
    return { start: at, end: at, note: `ss -K of the product's ${n} connections to the PBX` };
  }
  const command = o.drop.slice('cli:'.length);
  const said = o.pbx === 'asterisk' ? (await run(o.cli[0]!, [...o.cli.slice(1), command])).stdout : await eslApi(o, command);
  return { start: at, end: Date.now(), note: `${command}: ${said.trim().split('\n')[0]}` };
}

async function eslApi(o: FaultOptions, command: string): Promise<string> {
  const esl = await EslClient.connect(o.eslHost, o.eslPort, o.eslPassword);
  try { return await esl.api(command); } finally { esl.close(); }
}

function portOf(url: string): number {
  const u = new URL(url);
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
}

// ---- output ----------------------------------------------------------------------------------

function s(n: number | undefined, digits = 1): string {
  if (n === undefined) return '–';
  return Number.isNaN(n) ? 'not by the end' : n.toFixed(digits);
}

/** s() with its unit when it is a number. */
function sec(n: number | undefined, digits = 1): string {
  return n === undefined || Number.isNaN(n) ? s(n, digits) : `${s(n, digits)} s`;
}

function humanLine(r: FaultResult): string {
  const head = `${r.fault.padEnd(9)} ${r.mode.name.padEnd(8)}`;
  if (r.error || !r.stats || !r.injected) return `${head} FAILED: ${r.error}`;
  const x = r.stats;
  const t = (at: number | undefined) => (at === undefined ? '–' : `${((at - r.firstInvite!) / 1000).toFixed(1)} s`);
  const trunk = r.samples!.filter((p) => p.t >= r.injected!.start - 500)
    .map((p) => `${((p.t - r.firstInvite!) / 1000).toFixed(1)}:${p.trunk}${p.ready ? '' : `(${p.reasons.join('+') || 'not ready'})`}`).join(' ');
  return `${head} calls ${x.calls}: bridged ${x.bridged} (after the bot: released ${x.after.released}, people ${x.after.people}, `
    + `left up ${x.after.left}, cut ${x.after.cut}; longest alone after the bot ${s(x.maxAloneAfterBotS)} s), fallback ${x.fallback}`
    + `${x.fallbackPeople ? ` (${x.fallbackPeople} to people)` : ''}${x.answeredNotBridged ? ` (${x.answeredNotBridged} with the bot answered but an outcome that says not bridged)` : ''}, stranded ${x.stranded}, not answered ${x.unanswered}; `
    + `longest wait ${s(x.maxWaitS, 2)} s\n    outcome lines: one ${x.outcomeOne}, none by design ${x.trunkSkip + x.stasisFailed} `
    + `(trunk check ${x.trunkSkip}, Stasis()/socket failed ${x.stasisFailed}), missing ${x.missing}, duplicated ${x.duplicated}`
    + `${x.unmatchedLogLines ? `, PBX fallback lines without a call ${x.unmatchedLogLines}` : ''}; statuses ${JSON.stringify(x.statuses)}`
    + `\n    fault ${t(r.injected.start)} → ${t(r.injected.end)} (${r.injected.note}); calls hit ${t(x.firstHitAt)} → ${t(x.lastHitAt)}; `
    + `after the fault's end: first bridged ${sec(r.firstBridgedS)}, all bridged from ${sec(r.normalS)}, trunk open and ready ${sec(r.trunkBackS)}; `
    + `left ${r.left} channels${r.dropped ? `; CAPTURE DROPPED ${r.dropped} packets` : ''}\n    trunk: ${trunk}`;
}

function machineLine(o: FaultOptions, r: FaultResult): string {
  const head = `fault-${o.pbx} fault=${r.fault} mode=${r.mode.name} rate=${o.rate}`;
  if (r.error || !r.stats) return `${head} error="${(r.error ?? 'no result').split('\n')[0]!.replace(/"/g, "'")}"`;
  const x = r.stats;
  return [head, `calls=${x.calls}`, `bridged=${x.bridged}`, `fallback=${x.fallback}`, `stranded=${x.stranded}`, `unanswered=${x.unanswered}`,
    `left_after_bot=${x.after.left}`, `cut=${x.after.cut}`, `answered_not_bridged=${x.answeredNotBridged}`, `outcome_one=${x.outcomeOne}`, `no_outcome_trunk=${x.trunkSkip}`,
    `no_outcome_stasis_failed=${x.stasisFailed}`, `missing=${x.missing}`, `duplicated=${x.duplicated}`, `max_wait_s=${s(x.maxWaitS, 2)}`,
    `first_bridged_s=${s(r.firstBridgedS)}`, `normal_s=${s(r.normalS)}`, `trunk_back_s=${s(r.trunkBackS)}`, `left_channels=${r.left}`].join(' ');
}

/** The README's table (markdown). */
function table(results: FaultResult[]): string {
  const rows = results.map((r) => {
    const x = r.stats;
    if (!x) return `| ${FAULTS[r.fault].letter} ${r.fault} | ${r.mode.name} | error: ${r.error} |`;
    const stranded = x.stranded + x.after.left + x.unanswered;
    return `| ${FAULTS[r.fault].letter} ${r.fault} | ${r.mode.name} | ${x.calls} | ${x.bridged} | ${x.fallback} | ${stranded} | `
      + `${x.outcomeOne} / ${x.trunkSkip} / ${x.stasisFailed} | ${x.missing} / ${x.duplicated} | ${s(x.maxWaitS, 2)} | `
      + `${s(r.firstBridgedS)} / ${s(r.normalS)} / ${s(r.trunkBackS)} | ${r.left} |`;
  });
  return ['| fault | mode | calls | bridged | fallback | stranded | outcome lines: one / none, trunk check / none, Stasis() or socket failed | missing / duplicated | longest wait (s) | back to normal (s): first bridged / all bridged / trunk | left channels |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

stopChildrenOnSignal();

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  async (err: Error) => {
    await stopAll();
    process.stderr.write(`fault runner: ${err.message}\n`);
    process.exitCode = 1;
  },
);
