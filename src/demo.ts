/**
 * `twin-connector demo`: the real daemon against the built-in Asterisk and Twin simulators, a
 * handful of calls with different outcomes, one readable line per step and a summary table.
 */
import { Lab } from './sim/lab.js';
import type { BotBehaviour, CallerResult } from './sim/asterisk/ari-sim.js';
import type { TwinBehaviour } from './sim/twin-sim.js';
import type { CallOutcome } from './core/types.js';

interface Scenario {
  title: string;
  args: string[];
  twin: TwinBehaviour;
  bot: BotBehaviour;
  /** The caller hangs up this many ms after being answered. */
  callerHangsUpAfterMs?: number;
}

const SCENARIOS: Scenario[] = [
  { title: 'bot takes the call', args: ['bot=sales', 'record=1', 'var_lang=en'], twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 40 }, callerHangsUpAfterMs: 400 },
  { title: 'Twin rejects the call (null)', args: ['bot=sales', 'fallback_context=agents'], twin: { kind: 'null' }, bot: { kind: 'answer' } },
  { title: 'bot leg busy (486)', args: ['bot=sales'], twin: { kind: 'id' }, bot: { kind: 'busy', afterMs: 30 } },
  { title: 'bot hangs up first', args: ['bot=support'], twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 20, hangupAfterMs: 200 } },
  { title: 'caller hangs up during the warm-up', args: ['bot=sales'], twin: { kind: 'slow', delayMs: 500 }, bot: { kind: 'answer' }, callerHangsUpAfterMs: 100 },
  { title: 'Twin answers 500', args: ['bot=sales'], twin: { kind: 'status', status: 500 }, bot: { kind: 'answer' } },
  { title: 'next call while throttled', args: ['bot=sales'], twin: { kind: 'id' }, bot: { kind: 'answer' } },
];

const say = (line: string) => process.stdout.write(`${line}\n`);

export async function runDemo(): Promise<number> {
  say('twin-connector demo: the real daemon against built-in Asterisk (ARI) and Twin simulators on loopback\n');
  const lab = await Lab.start({
    config: { routes: { default: { bot: 'sales', fallback: { action: 'continue', context: 'twin-fallback', extension: 'agent' } } } },
  });
  await waitUntil(() => lab.ari.deviceState('Custom:twin-trunk') !== undefined);
  say(`asterisk  ARI simulator at ${lab.ari.url}, app 'twin' connected; trunk device state Custom:twin-trunk = ${lab.ari.deviceState('Custom:twin-trunk') ?? '(not published)'}`);
  say(`twin      Twin simulator at ${lab.twin.url}\n`);
  const rows: { n: number; title: string; outcome: CallOutcome; leftTo: string }[] = [];
  let leftovers: ReturnType<Lab['ari']['leftovers']>;
  try {
    for (const [i, scenario] of SCENARIOS.entries()) {
      const n = i + 1;
      const { outcome, left } = await runScenario(lab, scenario, n);
      rows.push({ n, title: scenario.title, outcome, leftTo: describeExit(left) });
      say('');
    }
    await waitUntil(() => lab.daemon.activeCalls === 0);
    leftovers = lab.ari.leftovers();
  } finally {
    await lab.stop();
  }
  printSummary(rows);
  const leaked = leftovers.channels.length + leftovers.bridges.length;
  if (leaked === 0) say('\nEvery call left the product (bridged, continued in the dialplan or hung up); Asterisk holds no channel or bridge of ours.');
  else say(`\nLEAK: Asterisk still holds ${leftovers.channels.join(', ')} ${leftovers.bridges.join(', ')}`);
  return leaked === 0 ? 0 : 1;
}

async function waitUntil(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

async function runScenario(lab: Lab, s: Scenario, n: number): Promise<{ outcome: CallOutcome; left: CallerResult }> {
  const tag = `asterisk  call ${n}`;
  lab.twin.script(() => s.twin);
  lab.ari.botBehaviour = () => s.bot;
  const warmupsBefore = lab.twin.warmups.length;
  const invitesBefore = lab.ari.invites.length;
  say(`${tag}: ${s.title} — caller +1555010${n} answered, dialplan runs Stasis(twin,${s.args.join(',')})`);
  const call = lab.ari.placeCall({ number: `+1555010${n}`, dialed: '100', args: s.args });
  if (s.callerHangsUpAfterMs !== undefined) setTimeout(() => call.hangup(), s.callerHangsUpAfterMs);
  const [left, outcome] = await Promise.all([call.left, lab.outcomeOf(call.id)]);

  const warmup = lab.twin.warmups[warmupsBefore];
  if (!warmup) say(`${tag}: no warm-up sent (trunk ${lab.daemon.gate.snapshot().state})`);
  else say(`${tag}: Twin warm-up → HTTP ${warmup.status || 'no answer (caller gone)'} ${shorten(warmup.answer ?? '')}`);
  const invite = lab.ari.invites[invitesBefore];
  if (invite) {
    const headers = invite.headers.map(([k, v]) => `${k}: ${v}`).join(', ');
    say(`${tag}: bot leg INVITE ${invite.requestUri} with ${headers}`);
  }
  say(`${tag}: caller ${describeExit(left)}; TWIN_STATUS=${left.vars.TWIN_STATUS ?? '(not set)'}`);
  say(`${tag}: outcome ${outcome.status}${outcome.detail ? ` (${outcome.detail})` : ''}${outcome.endedBy ? `, ${outcome.endedBy} hung up first` : ''}`);
  say(`${tag}: trunk is ${lab.daemon.gate.snapshot().state}, device state Custom:twin-trunk = ${lab.ari.deviceState('Custom:twin-trunk')}`);
  return { outcome, left };
}

function describeExit(left: CallerResult): string {
  switch (left.kind) {
    case 'continued': return `continued in the dialplan at ${left.context},${left.extension},${left.priority}`;
    case 'hungup-by-app': return `hung up by the product (cause ${left.reasonCode ?? '16'})`;
    case 'hungup-by-caller': return 'hung up';
    case 'app-unavailable': return 'not taken (product not connected)';
  }
}

function shorten(text: string): string {
  return text.length > 90 ? `${text.slice(0, 87)}...` : text;
}

function printSummary(rows: { n: number; title: string; outcome: CallOutcome; leftTo: string }[]): void {
  const header = ['#', 'scenario', 'TWIN_STATUS', 'warm-up ms', 'caller'];
  const lines = rows.map((r) => [String(r.n), r.title, r.outcome.status, r.outcome.warmupMs === undefined ? '-' : String(r.outcome.warmupMs), r.leftTo]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  say('summary');
  say(fmt(header));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) say(fmt(l));
}
