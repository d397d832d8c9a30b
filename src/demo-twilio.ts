/**
 * The demo's Twilio part: the same calls as on the PBXs, to a Twilio number, through the Twilio
 * stand-in (src/sim/twilio/): one line per step, each starting with `twilio`.
 */
import { parseCallRequest } from './outbound/request.js';
import type { BotBehaviour } from './sim/call-model.js';
import type { TwinBehaviour } from './sim/twin-sim.js';
import { TwilioLab } from './sim/twilio/twilio-lab.js';
import type { TwilioCallEnd } from './sim/twilio/twilio-sim.js';

interface TwilioScenario {
  title: string;
  twin: TwinBehaviour;
  bot: BotBehaviour;
  /** The caller hangs up this many ms after the call reached Twilio. */
  callerHangsUpAfterMs?: number;
}

const SCENARIOS: TwilioScenario[] = [
  { title: 'bot takes the call', twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 40 }, callerHangsUpAfterMs: 1500 },
  { title: 'Twin rejects the call (null)', twin: { kind: 'null' }, bot: { kind: 'answer' } },
  { title: 'bot leg busy (486)', twin: { kind: 'id' }, bot: { kind: 'busy', afterMs: 30 } },
  { title: 'bot hangs up first', twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 20, hangupAfterMs: 200 } },
  { title: 'bot transfers the caller to "operator"', twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 20, refer: { afterMs: 200, to: 'operator' } } },
  { title: 'bot tries a transfer the route does not list', twin: { kind: 'id' }, bot: { kind: 'answer', afterMs: 20, hangupAfterMs: 400, refer: { afterMs: 200, to: '+19005550123' } } },
  { title: 'caller hangs up during the warm-up', twin: { kind: 'slow', delayMs: 500 }, bot: { kind: 'answer' }, callerHangsUpAfterMs: 100 },
  { title: 'Twin answers 500', twin: { kind: 'status', status: 500 }, bot: { kind: 'answer' } },
  { title: 'next call while throttled', twin: { kind: 'id' }, bot: { kind: 'answer' } },
];

const say = (line: string) => process.stdout.write(`twilio     ${line}\n`);

/** Runs the scenarios; the calls the product still holds at the end (none expected). */
export async function runTwilioDemo(): Promise<string[]> {
  const lab = await TwilioLab.start({
    twilio: { msPerRingSecond: 1000 },
    config: { routes: { default: { bot: 'sales', record: true, twilio: {
      fallback: { action: 'dial', number: '+442071234567' },
      after_bot_hangup: { action: 'redirect', url: 'https://customer.example.com/after-bot' },
      transfers: { operator: '+442071234599' },
    } } } },
  });
  lab.twilio.personBehaviour = () => ({ kind: 'answer', afterMs: 100, hangupAfterMs: 300 });
  say(`Twilio stand-in (built from Twilio's docs): number webhook POST ${lab.twilio.voiceUrl}, reverse proxy to 127.0.0.1:${lab.daemon.twilio!.port}`);
  try {
    let n = 0;
    for (const s of SCENARIOS) {
      // The outbound call goes before Twin's 500 closes the trunk for the cool-down.
      if (s.twin.kind === 'status') await runOutbound(lab, ++n);
      await runScenario(lab, s, ++n);
    }
    const deadline = Date.now() + 3000;
    while (lab.daemon.activeCalls > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return lab.daemon.activeCalls > 0 ? [`twilio: ${lab.daemon.activeCalls} call(s) still in the product`] : [];
  } finally {
    await lab.stop();
  }
}

async function runScenario(lab: TwilioLab, s: TwilioScenario, n: number): Promise<void> {
  lab.twin.script(() => s.twin);
  lab.twilio.botBehaviour = () => s.bot;
  const invitesBefore = lab.twilio.invites.length;
  const call = lab.twilio.placeCall({ from: '+15550100', to: '+15550199' });
  say(`#${n} ${s.title}: ${call.sid} from +15550100 to +15550199, signed webhook sent`);
  if (s.callerHangsUpAfterMs !== undefined) setTimeout(() => call.hangup(), s.callerHangsUpAfterMs);
  const end = await call.left;
  const invite = lab.twilio.invites[invitesBefore];
  if (invite) say(`#${n} bot INVITE ${invite.requestUri} with ${invite.headers.map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  const outcome = await lab.outcomeOf(call.sid);
  const transfer = outcome.transferTarget ? ` to ${outcome.transferTarget}` : '';
  say(`#${n} outcome ${outcome.status}${transfer}${outcome.endedBy ? ` (${outcome.endedBy} hung up first)` : ''}${outcome.detail ? ` — ${outcome.detail}` : ''}; caller ${describe(end)}\n`);
}

/** `call --pbx twilio` as the daemon runs it: warm-up, the Calls API with inline TwiML, the bot's INVITE. */
async function runOutbound(lab: TwilioLab, n: number): Promise<void> {
  lab.twin.script(() => ({ kind: 'id' }));
  lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 40, hangupAfterMs: 400 });
  lab.calls.calleeBehaviour = () => ({ kind: 'answer', afterMs: 300 });
  const invitesBefore = lab.twilio.invites.length;
  say(`#${n} outbound over Twilio's Calls API (call --pbx twilio): to +442079460018 from +12025550143`);
  const placed = lab.daemon.placeCall(parseCallRequest({ to: '+442079460018', from: '+12025550143', bot: 'sales', pbx: 'twilio' }, lab.config));
  const result = await placed.result;
  const created = lab.calls.calls.at(-1);
  const followed = created?.params.StatusCallback ? `, followed by status callbacks and the <Dial> action at ${created.params.StatusCallback.replace(/\/[^/]*$/, '/…')}` : ', followed by reading the Calls API';
  if (created) say(`#${n} POST Calls.json → ${created.resource.sid} (Timeout ${created.params.Timeout}, inline TwiML <Dial><Sip>${followed}); Twilio says ${created.resource.status}`);
  const invite = lab.twilio.invites[invitesBefore];
  if (invite) say(`#${n} bot INVITE ${invite.requestUri} with ${invite.headers.map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  say(`#${n} outcome ${result.status}${result.endedBy ? ` (${result.endedBy} hung up first)` : ''}${result.detail ? ` — ${result.detail}` : ''}\n`);
}

function describe(end: TwilioCallEnd): string {
  switch (end.kind) {
    case 'hangup': return 'hung up by TwiML';
    case 'rejected': return `rejected (${end.reason})`;
    case 'dialed-person': return `sent to people: <Dial> ${end.target}`;
    case 'redirected': return `redirected to ${end.url}`;
    case 'caller-hung-up': return `hung up (during the ${end.during})`;
    case 'webhook-failed': return `webhook failed (HTTP ${end.status})`;
  }
}
