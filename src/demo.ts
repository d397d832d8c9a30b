/**
 * `twin-connector demo`: the real daemon against the built-in Twin simulator and, in turn, the
 * Asterisk (ARI) and FreeSWITCH (ESL) simulators: the same handful of calls with different
 * outcomes on each PBX, one readable line per step and a summary table; then a small outbound
 * campaign on each PBX (answered, rejected, no answer, busy).
 */
import { Lab } from './sim/lab.js';
import type { BotBehaviour, CallerResult } from './sim/call-model.js';
import type { PbxKind, PbxSim } from './sim/pbx-sim.js';
import type { TwinBehaviour } from './sim/twin-sim.js';
import type { CallOutcome } from './core/types.js';
import { asteriskDeviceState, trunkWord } from './pbx/shared.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { closeServer, listen } from './sim/http-util.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { campaignFiles, readCampaign, writeResults } from './outbound/campaign-file.js';
import { Journal } from './outbound/journal.js';
import type { OutboundResult } from './outbound/outbound.js';
import { runTwilioDemo } from './demo-twilio.js';

interface Scenario {
  title: string;
  hints: Record<string, string>;
  twin: TwinBehaviour;
  bot: BotBehaviour;
  /** The caller hangs up this many ms after being answered. */
  callerHangsUpAfterMs?: number;
}

const SCENARIOS: Scenario[] = [
  { title: 'bot takes the call', hints: { bot: 'sales', record: '1', var_lang: 'en' }, twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 40 }, callerHangsUpAfterMs: 1500 },
  { title: 'Twin rejects the call (null)', hints: { bot: 'sales', fallback_context: 'agents' }, twin: { kind: 'null' }, bot: { kind: 'answer' } },
  { title: 'bot leg busy (486)', hints: { bot: 'sales' }, twin: { kind: 'id' }, bot: { kind: 'busy', afterMs: 30 } },
  { title: 'bot hangs up first', hints: { bot: 'support' }, twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 20, hangupAfterMs: 200 } },
  { title: 'bot hands the caller to an operator (REFER)', hints: { bot: 'support' }, twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 20, refer: { afterMs: 100, to: 'operator' } }, callerHangsUpAfterMs: 700 },
  { title: 'caller hangs up during the warm-up', hints: { bot: 'sales' }, twin: { kind: 'slow', delayMs: 500 }, bot: { kind: 'answer' }, callerHangsUpAfterMs: 100 },
  { title: 'Twin answers 500', hints: { bot: 'sales' }, twin: { kind: 'status', status: 500 }, bot: { kind: 'answer' } },
  { title: 'next call while throttled', hints: { bot: 'sales' }, twin: { kind: 'id' }, bot: { kind: 'answer' } },
];

const PBX_NAMES: Record<PbxKind, string> = { asterisk: 'Asterisk (ARI)', freeswitch: 'FreeSWITCH (ESL)' };
const TRUNK_NAMES: Record<PbxKind, string> = { asterisk: 'device state Custom:twin-trunk', freeswitch: 'global variable twin_trunk' };

interface Row { pbx: PbxKind; n: number; title: string; status: string; warmupMs?: number; leftTo: string }

const say = (line: string) => process.stdout.write(`${line}\n`);

export async function runDemo(): Promise<number> {
  say('twin-connector demo: the real daemon against built-in Twin, Asterisk and FreeSWITCH simulators on loopback\n');
  const rows: Row[] = [];
  const leaks: string[] = [];
  for (const kind of ['asterisk', 'freeswitch'] as const) leaks.push(...await runPbx(kind, rows));
  printSummary(rows);
  say('');
  leaks.push(...await runTwilioDemo());
  for (const kind of ['asterisk', 'freeswitch'] as const) leaks.push(...await runCampaignDemo(kind));
  if (leaks.length === 0) say('\nEvery call left the product (bridged, continued in the dialplan or hung up); neither PBX holds a channel, bridge or socket of ours.');
  else say(`\nLEAK: ${leaks.join(', ')}`);
  return leaks.length === 0 ? 0 : 1;
}

/** One fresh daemon per PBX, so the second run does not start throttled by the first one's 500. */
async function runPbx(kind: PbxKind, rows: Row[]): Promise<string[]> {
  const customer = await startCustomer();
  const lab = await Lab.start({
    pbx: kind,
    config: {
      routes: { default: { bot: 'sales', fallback: { action: 'continue', context: 'twin-fallback', extension: 'agent' }, transfers: { operator: 'agents,s' } } },
      http: { listen_port: 0 },
      callbacks: { public_url: 'https://connector.example.com', secret: 'demo-callback-secret', dir: mkdtempSync(join(tmpdir(), 'twin-demo-callbacks-')), forward_to: [customer.url] },
    },
  });
  const pbx = lab.pbx();
  await waitUntil(() => pbx.trunkState() !== undefined);
  const where = kind === 'asterisk' ? `ARI simulator at ${lab.ari.url}, app 'twin' connected` : `ESL simulator at 127.0.0.1:${lab.fs.port}, product's call socket on 127.0.0.1:${lab.daemon.freeswitch!.listenPort}`;
  say(`${kind.padEnd(11)}${PBX_NAMES[kind]}: ${where}; trunk ${TRUNK_NAMES[kind]} = ${pbx.trunkState() ?? '(not published)'}`);
  say(`${'twin'.padEnd(11)}Twin simulator at ${lab.twin.url}\n`);
  try {
    for (const [i, scenario] of SCENARIOS.entries()) {
      const { outcome, left } = await runScenario(lab, pbx, scenario, i + 1);
      const status = outcome?.status ?? `${left.vars.TWIN_STATUS ?? '-'} (dialplan)`;
      rows.push({ pbx: kind, n: i + 1, title: scenario.title, status, warmupMs: outcome?.warmupMs, leftTo: describeExit(left) });
      say('');
    }
    await showOperations(lab, kind, customer);
    await waitUntil(() => lab.daemon.activeCalls === 0 && pbx.leftovers().length === 0);
    return pbx.leftovers();
  } finally {
    await lab.stop();
    await customer.stop();
  }
}

/** The daemon's HTTP port after the calls: trunk state, readiness, metrics, and a Twin callback forwarded. */
async function showOperations(lab: Lab, kind: PbxKind, customer: Customer): Promise<void> {
  const tag = `${kind.padEnd(11)}ops`;
  const base = `http://127.0.0.1:${lab.daemon.httpServer!.port}`;
  const get = async (path: string) => (await fetch(base + path)).text();
  say(`${tag}: GET /v1/trunk → ${await get('/v1/trunk')}`);
  say(`${tag}: GET /readyz → ${await get('/readyz')}`);
  const calls = (await get('/metrics')).split('\n').filter((l) => l.startsWith('twin_connector_calls_total{'));
  for (const line of calls) say(`${tag}: GET /metrics → ${line}`);
  const first = lab.outcomes[0];
  const event = { type: 'CALL_ENDED', callId: first?.twinId, data: { callId: first?.callId }, result: { duration: 12 } };
  const res = await fetch(`${base}/v1/twin/callbacks/demo-callback-secret`, { method: 'POST', body: JSON.stringify(event) });
  say(`${tag}: Twin posts CALL_ENDED for call 1 → HTTP ${res.status} ${await res.text()} (stored on disk before the answer)`);
  await waitUntil(() => customer.received.length > 0);
  say(`${tag}: forwarded to the customer's ${customer.url}: ${customer.received[0] ?? '(not yet)'}\n`);
}

interface Customer { url: string; received: string[]; stop(): Promise<void> }

/** The customer's webhook receiver, for the demo's forwarded callback. */
async function startCustomer(): Promise<Customer> {
  const received: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => { received.push(body); res.writeHead(204).end(); });
  });
  const port = await listen(server, 0);
  return { url: `http://127.0.0.1:${port}/twin-results`, received, stop: () => closeServer(server) };
}

const CAMPAIGN: { number: string; what: string; twin: TwinBehaviour; subscriber: BotBehaviour }[] = [
  { number: '+442079460101', what: 'answers', twin: { kind: 'id' }, subscriber: { kind: 'answer', afterMs: 50 } },
  { number: '+442079460102', what: 'Twin rejects (null)', twin: { kind: 'null' }, subscriber: { kind: 'answer' } },
  { number: '+442079460103', what: 'never answers', twin: { kind: 'id' }, subscriber: { kind: 'no-answer' } },
  { number: '+442079460104', what: 'is busy', twin: { kind: 'id' }, subscriber: { kind: 'busy', afterMs: 30 } },
  { number: '+442079460105', what: 'answers', twin: { kind: 'id' }, subscriber: { kind: 'answer', afterMs: 80 } },
];

/** A small outbound campaign: warm up (batched), dial, connect; one outcome per number. */
async function runCampaignDemo(kind: PbxKind): Promise<string[]> {
  const lab = await Lab.start({ pbx: kind, config: { outbound: { caller_id: '+12025550143', ring_timeout_s: 1 }, routes: { default: { bot: 'sales' } } } });
  const pbx = lab.pbx();
  const byNumber = new Map(CAMPAIGN.map((c) => [c.number, c]));
  lab.twin.script((_id, call) => byNumber.get(call.number ?? '')?.twin ?? { kind: 'id' });
  pbx.setSubscriberBehaviour((n) => byNumber.get(n)?.subscriber ?? { kind: 'answer' });
  pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 20, hangupAfterMs: 300 }));
  const dir = mkdtempSync(join(tmpdir(), 'twin-demo-'));
  const csv = join(dir, 'campaign.csv');
  writeFileSync(csv, `number,bot,var_name\n${CAMPAIGN.map((c, i) => `${c.number},sales,Customer ${i + 1}`).join('\n')}\n`);
  const tag = `${kind.padEnd(11)}campaign`;
  say(`${tag}: ${CAMPAIGN.length} numbers from ${csv}: ${CAMPAIGN.map((c) => `${c.number} ${c.what}`).join(', ')}`);
  try {
    const rows = readCampaign(csv, lab.config);
    const files = campaignFiles(csv);
    const journal = new Journal(files.journal);
    const campaign = lab.daemon.campaign(rows, journal, { concurrency: 5, callsPerSecond: 10, batchSize: 5 });
    campaign.on('result', (_key: string, r: OutboundResult) => say(`${tag}: ${r.to} ${r.status}${r.detail ? ` (${r.detail})` : ''}`));
    const summary = await campaign.run();
    journal.close();
    writeResults(files.results, rows, campaign.results);
    const counts = Object.entries(summary.counts).map(([k, v]) => `${k} ${v}`).join(', ');
    say(`${tag}: summary ${counts}; ${summary.warmupRequests} warm-up request(s) for ${summary.total} numbers; results in ${files.results}`);
    say('');
    await waitUntil(() => lab.daemon.activeCalls === 0 && pbx.leftovers().length === 0);
    return pbx.leftovers();
  } finally {
    await lab.stop();
  }
}

async function waitUntil(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** The outcome is missing when the shipped dialplan's trunk check sent the caller on without the product. */
async function runScenario(lab: Lab, pbx: PbxSim, s: Scenario, n: number): Promise<{ outcome?: CallOutcome; left: CallerResult }> {
  const tag = `${pbx.kind.padEnd(11)}call ${n}`;
  lab.twin.script(() => s.twin);
  pbx.setBotBehaviour(() => s.bot);
  const warmupsBefore = lab.twin.warmups.length;
  const invitesBefore = pbx.invites.length;
  say(`${tag}: ${s.title} — caller +1555010${n}, dialplan: ${pbx.describeEntry(s.hints)}`);
  const call = pbx.placeCall({ number: `+1555010${n}`, dialed: '100', hints: s.hints });
  if (s.callerHangsUpAfterMs !== undefined) setTimeout(() => call.hangup(), s.callerHangsUpAfterMs);
  const left = await call.left;
  const outcome = pbx.wasAnnounced(call.id) ? await lab.outcomeOf(call.id) : undefined;

  const warmup = lab.twin.warmups[warmupsBefore];
  if (!warmup) say(`${tag}: no warm-up sent (trunk ${lab.daemon.gate.snapshot().state})`);
  else say(`${tag}: Twin warm-up → HTTP ${warmup.status || 'no answer (caller gone)'} ${shorten(warmup.answer ?? '')}`);
  const invite = pbx.invites[invitesBefore];
  if (invite) {
    const headers = invite.headers.map(([k, v]) => `${k}: ${v}`).join(', ');
    say(`${tag}: bot leg INVITE ${invite.requestUri} with ${headers}`);
  }
  say(`${tag}: caller ${describeExit(left)}; TWIN_STATUS=${left.vars.TWIN_STATUS ?? '(not set)'}`);
  const transfer = outcome?.transferTarget ? ` to ${outcome.transferTarget} (the bot's REFER; its leg is gone)` : '';
  if (outcome) say(`${tag}: outcome ${outcome.status}${transfer}${outcome.detail ? ` (${outcome.detail})` : ''}${outcome.endedBy ? `, ${outcome.endedBy} hung up first` : ''}`);
  else say(`${tag}: the dialplan's trunk check (${TRUNK_NAMES[pbx.kind]} = UNAVAILABLE) skipped the product: no outcome of ours`);
  const published = () => {
    const word = trunkWord(lab.daemon.gate.snapshot());
    return pbx.kind === 'asterisk' ? asteriskDeviceState(word) : word;
  };
  await waitUntil(() => pbx.trunkState() === published(), 500);
  say(`${tag}: trunk is ${lab.daemon.gate.snapshot().state}, ${TRUNK_NAMES[pbx.kind]} = ${pbx.trunkState()}`);
  return { outcome, left };
}

function describeExit(left: CallerResult): string {
  switch (left.kind) {
    case 'continued': return `continued in the dialplan at ${left.context},${left.extension},${left.priority}`;
    case 'hungup-by-app': return `hung up by the product (cause ${left.reasonCode ?? '16'})`;
    case 'hungup-by-caller': return 'hung up';
    case 'app-unavailable': return 'not taken (product not connected)';
    case 'transferred': return `transferred by the bot to ${left.target} (${left.context},${left.extension})`;
  }
}

function shorten(text: string): string {
  return text.length > 90 ? `${text.slice(0, 87)}...` : text;
}

function printSummary(rows: Row[]): void {
  const header = ['pbx', '#', 'scenario', 'TWIN_STATUS', 'warm-up ms', 'caller'];
  const lines = rows.map((r) => [r.pbx, String(r.n), r.title, r.status, r.warmupMs === undefined ? '-' : String(r.warmupMs), r.leftTo]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  say('summary');
  say(fmt(header));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) say(fmt(l));
}
