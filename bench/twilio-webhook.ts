/**
 * Twilio webhook benchmark: incoming calls to a Twilio number at a steady rate through the Twilio
 * stand-in (signed webhook → signature check, route, trunk gate, sync warm-up against the Twin
 * simulator, TwiML back). "Added" is the webhook's round trip as the stand-in measures it minus
 * the time the Twin simulator spent on that call's warm-up: what the product adds on top of Twin.
 * Each call then runs on: the bot answers, hangs up after 200 ms, the <Dial> action is answered.
 * The stand-in and the Twin simulator run in a child process (bench/twilio-sims.ts), as `npm run
 * bench` does for the PBX simulators: this process is the product's alone.
 * A first run of BENCH_WARMUP_S seconds at the same rate is not timed: both processes compile and
 * open their connections then (before it, the cold start made most of the p99).
 * BENCH_CAPTURE=1 (root, tcpdump): the timed run is also captured on `lo`, and "added" is taken
 * from kernel timestamps as well: webhook in → TwiML out at the product's port, less warm-up out →
 * Twin's answer in at Twin's port. That leaves out the stand-ins' own delays (their event loops,
 * on the same two cores) and keeps everything the product does, the time before it reads the
 * webhook and after it writes the TwiML included.
 * Run with: npm run bench:twilio   (BENCH_RATE, BENCH_SECONDS, BENCH_TWIN_MS, BENCH_WARMUP_S, BENCH_CAPTURE)
 * Last line: twilio webhooks_per_s=N p50_added_ms=N p99_added_ms=N outcomes=...
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import type { CallOutcome } from '../src/core/types.js';
import { Daemon } from '../src/daemon.js';
import { silentLogger } from '../src/log.js';
import type { TwilioBenchCommand, TwilioBenchReady, TwilioBenchReport } from './twilio-sims.js';
import type { TwinChildReady, TwinChildTimes } from './twin-sim-child.js';
import { startTcpdump } from './real-pbx/capture.js';
import { exchanges, readHttpMessages } from './http-capture.js';

const RATE = Number(process.env.BENCH_RATE ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const TWIN_MS = Number(process.env.BENCH_TWIN_MS ?? 50);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 3);
const PUBLIC_URL = 'https://connector.example.test/twilio';

/** BENCH_TWIN_PROCESS=1: the Twin simulator in a process of its own, apart from the Twilio stand-in. */
const TWIN_PROCESS = process.env.BENCH_TWIN_PROCESS === '1';
const CAPTURE = process.env.BENCH_CAPTURE === '1';

function forkBench(name: string, env: Record<string, string>): ChildProcess {
  const ts = import.meta.url.endsWith('.ts');
  const file = fileURLToPath(new URL(`./${name}.${ts ? 'ts' : 'js'}`, import.meta.url));
  return fork(file, [], { execArgv: ts ? ['--import', 'tsx'] : [], env: { ...process.env, BENCH_TWIN_MS: String(TWIN_MS), ...env } });
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve) => child.once('message', (m) => resolve(m as T)));
}

async function startSims(): Promise<{ child: ChildProcess; twinChild?: ChildProcess; ready: TwilioBenchReady }> {
  const twinChild = TWIN_PROCESS ? forkBench('twin-sim-child', {}) : undefined;
  const twin = twinChild ? await nextMessage<TwinChildReady>(twinChild) : undefined;
  const child = forkBench('twilio-sims', twin ? { BENCH_TWIN_URL: twin.twinUrl, BENCH_TWIN_EMAIL: twin.email, BENCH_TWIN_PASSWORD: twin.password } : {});
  return { child, ...(twinChild ? { twinChild } : {}), ready: await nextMessage<TwilioBenchReady>(child) };
}

/** With the Twin simulator apart: each webhook's round trip minus Twin's own time on that call. */
async function addedAcrossProcesses(twinChild: ChildProcess, report: TwilioBenchReport): Promise<number[]> {
  const times = nextMessage<TwinChildTimes>(twinChild);
  twinChild.send({ cmd: 'times' });
  const twinMs = new Map((await times).entries);
  return report.webhookMs.flatMap(([sid, ms]) => (twinMs.has(sid) ? [ms - twinMs.get(sid)!] : []));
}

function startDaemon(ready: TwilioBenchReady): Daemon {
  const config = parseConfig({
    log: { level: 'silent' },
    twin: {
      iam_url: ready.twinUrl, cis_url: ready.twinUrl, email: ready.email, password: ready.password, warmup_timeout_ms: 2000,
      sip: { uri: 'sip:twinbot@127.0.0.1:5070', headers: { 'X-TWIN-CallId': '{twin_id}', 'X-TWIN-ClientCallId': '{call_id}' } },
    },
    twilio: { account_sid: ready.accountSid, auth_token: ready.authToken, public_url: PUBLIC_URL, listen_port: 0 },
    trunk: { max_concurrent_calls: 10_000, max_calls_per_second: 10_000 },
    routes: { default: { bot: 'bench' } },
    state: { dir: mkdtempSync(join(tmpdir(), 'twin-bench-state-')) },
  }, {});
  return new Daemon(config, { log: silentLogger });
}

function ask(child: ChildProcess, command: TwilioBenchCommand): Promise<TwilioBenchReport> {
  const report = new Promise<TwilioBenchReport>((resolve) => child.once('message', (m) => resolve(m as TwilioBenchReport)));
  child.send(command);
  return report;
}

/**
 * The product's own view of each incoming-call webhook: from the request reaching its HTTP server
 * to the TwiML written (Node's http diagnostics channels), warm-up included. Set apart from the
 * stand-in's view, it tells time spent in the product from time spent getting there and back.
 */
function serverSideVoiceMs(): number[] {
  const startedAt = new WeakMap<IncomingMessage, number>();
  const durations: number[] = [];
  subscribe('http.server.request.start', (msg) => {
    const { request } = msg as { request: IncomingMessage };
    if (request.url?.endsWith('/voice')) startedAt.set(request, performance.now());
  });
  subscribe('http.server.response.finish', (msg) => {
    const { request } = msg as { request: IncomingMessage };
    const t0 = startedAt.get(request);
    if (t0 !== undefined) durations.push(performance.now() - t0);
  });
  return durations;
}

/** Each warm-up request as the product's HTTP client (undici) times it: sent → response headers in. */
function warmupRoundTripMs(): number[] {
  const sentAt = new WeakMap<object, number>();
  const durations: number[] = [];
  subscribe('undici:request:create', (msg) => {
    const { request } = msg as { request: { path: string } };
    if (request.path.startsWith('/api/v1/calls')) sentAt.set(request, performance.now());
  });
  subscribe('undici:request:headers', (msg) => {
    const { request } = msg as { request: object };
    const t0 = sentAt.get(request);
    if (t0 !== undefined) durations.push(performance.now() - t0);
  });
  return durations;
}

/**
 * Per call, from the capture: (TwiML out − webhook in) at the product's port, less (Twin's answer
 * in − warm-up out) at Twin's port, matched by CallSid (the webhook's form, the warm-up's callId).
 */
function addedOnTheWire(pcap: string, productPort: number, twinPort: number): { added: number[]; unreadable: number } {
  const { messages, unreadable } = readHttpMessages(pcap);
  const webhooks = exchanges(messages, productPort, (req) => (req.startLine.includes('/voice ') ? new URLSearchParams(req.body).get('CallSid') ?? undefined : undefined));
  const warmups = exchanges(messages, twinPort, (req) => {
    if (!req.startLine.startsWith('POST /api/v1/calls')) return undefined;
    try {
      return (JSON.parse(req.body) as { calls?: { callId?: string }[] }).calls?.[0]?.callId;
    } catch {
      return undefined;
    }
  });
  const added: number[] = [];
  for (const [sid, hook] of webhooks) {
    const warm = warmups.get(sid);
    if (warm) added.push((hook.answeredAt - hook.sentAt) - (warm.answeredAt - warm.sentAt));
  }
  return { added, unreadable };
}

/** Polls `done` every 50 ms, for 10 s at most. */
async function waitFor(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

async function main(): Promise<void> {
  const serverSide = serverSideVoiceMs();
  const warmups = warmupRoundTripMs();
  const sims = await startSims();
  const daemon = startDaemon(sims.ready);
  const outcomes: CallOutcome[] = [];
  daemon.on('outcome', (o: CallOutcome) => outcomes.push(o));
  await daemon.start();
  sims.child.send({ cmd: 'target', publicUrl: PUBLIC_URL, port: daemon.twilio!.port } satisfies TwilioBenchCommand);
  const warmup = WARMUP_S > 0 ? await ask(sims.child, { cmd: 'run', rate: RATE, seconds: WARMUP_S }) : undefined;
  const untimed = warmup?.total ?? 0;
  await waitFor(() => outcomes.length >= untimed);
  if (sims.twinChild && warmup) await addedAcrossProcesses(sims.twinChild, warmup); // forgets the untimed calls' times
  serverSide.length = 0;
  warmups.length = 0;
  const productPort = daemon.twilio!.port;
  const twinPort = Number(new URL(sims.ready.twinUrl).port);
  const pcap = join(mkdtempSync(join(tmpdir(), 'twin-bench-capture-')), 'webhooks.pcap');
  const capture = CAPTURE ? await startTcpdump(pcap, 'lo', ['tcp', 'and', '(', 'port', String(productPort), 'or', 'port', String(twinPort), ')']) : undefined;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const report = await ask(sims.child, { cmd: 'run', rate: RATE, seconds: SECONDS });
  loop.disable();
  const captured = capture ? { dropped: (await capture.stop()).dropped, added: addedOnTheWire(pcap, productPort, twinPort) } : undefined;
  await waitFor(() => outcomes.length >= untimed + report.total);
  outcomes.splice(0, untimed);
  if (sims.twinChild) report.addedMs = await addedAcrossProcesses(sims.twinChild, report);
  await daemon.stop();
  sims.child.disconnect();
  sims.twinChild?.disconnect();

  const counts: Record<string, number> = {};
  const details = new Map<string, string>();
  for (const o of outcomes) {
    counts[o.status] = (counts[o.status] ?? 0) + 1;
    if (o.status !== 'CONNECTED' && !details.has(o.status)) details.set(o.status, o.detail ?? '');
  }
  for (const [status, detail] of details) console.log(`first ${status}: ${detail}`);
  const added = report.addedMs.sort((a, b) => a - b);
  const pct = (p: number) => added[Math.min(added.length - 1, Math.floor((p / 100) * added.length))] ?? NaN;
  console.log(`${report.total} webhooks at ${RATE}/s (sent in ${report.sentS.toFixed(1)} s), Twin warm-up ${TWIN_MS} ms, ${added.length} timed, caller ends ${JSON.stringify(report.ends)}`);
  const over = (ms: number) => added.filter((a) => a > ms).length;
  console.log(`added p90 ${pct(90).toFixed(2)} ms, p95 ${pct(95).toFixed(2)} ms, max ${(added.at(-1) ?? NaN).toFixed(1)} ms; over 5 ms: ${over(5)}, over 20 ms: ${over(20)}`);
  const inProduct = serverSide.sort((a, b) => a - b);
  const at = (p: number) => inProduct[Math.min(inProduct.length - 1, Math.floor((p / 100) * inProduct.length))] ?? NaN;
  console.log(`in the product (request in → TwiML out, warm-up of ${TWIN_MS} ms included): p50 ${at(50).toFixed(2)} ms, p99 ${at(99).toFixed(2)} ms, max ${(inProduct.at(-1) ?? NaN).toFixed(1)} ms`);
  const trips = warmups.sort((a, b) => a - b);
  const tripAt = (p: number) => trips[Math.min(trips.length - 1, Math.floor((p / 100) * trips.length))] ?? NaN;
  console.log(`warm-up round trip as the product's client sees it (${trips.length}): p50 ${tripAt(50).toFixed(2)} ms, p99 ${tripAt(99).toFixed(2)} ms`);
  console.log(`event-loop delay p99: product ${(loop.percentile(99) / 1e6).toFixed(1)} ms, stand-ins ${report.loopP99Ms.toFixed(1)} ms; `
    + `max: product ${(loop.max / 1e6).toFixed(1)} ms, stand-ins ${report.loopMaxMs.toFixed(1)} ms`);
  if (captured) {
    const wire = captured.added.added.sort((a, b) => a - b);
    const w = (p: number) => wire[Math.min(wire.length - 1, Math.floor((p / 100) * wire.length))] ?? NaN;
    console.log(`added on the wire (kernel timestamps at the product's and Twin's ports, ${wire.length} calls, ${captured.dropped} packets dropped, `
      + `${captured.added.unreadable} streams unreadable): p50 ${w(50).toFixed(2)} ms, p90 ${w(90).toFixed(2)} ms, p99 ${w(99).toFixed(2)} ms, max ${(wire.at(-1) ?? NaN).toFixed(1)} ms`);
    console.log(`twilio-wire webhooks_per_s=${(report.total / report.sentS).toFixed(0)} p50_added_ms=${w(50).toFixed(2)} p99_added_ms=${w(99).toFixed(2)} calls=${wire.length}`);
  }
  console.log(`twilio webhooks_per_s=${(report.total / report.sentS).toFixed(0)} p50_added_ms=${pct(50).toFixed(2)} p99_added_ms=${pct(99).toFixed(2)} outcomes=${JSON.stringify(counts)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
