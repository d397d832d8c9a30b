/**
 * A call to a Twilio number that a run of the product put through to the bot, and then the product
 * killed (SIGKILL) and started again: the next run takes the call's <Dial> action with the help of
 * the call journal, counts the call once, and sends the caller on as the route says, instead of
 * hanging up on it. The daemon runs as a child process; the Twilio stand-in and the Twin simulator
 * stay in the test's process and keep the call going, as Twilio would.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCallsApiSim } from '../src/sim/twilio/calls-api.js';
import { LAB_PUBLIC_URL } from '../src/sim/twilio/twilio-lab.js';
import { TwilioSimulator } from '../src/sim/twilio/twilio-sim.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import { freePort, runDaemonProcess, writeDaemonConfig, type DaemonProcess } from './daemon-process.js';
import { waitFor } from './helpers.js';

const DESK = '+442071234567';
const twin = new TwinSimulator();
const twilio = new TwilioSimulator({ msPerRingSecond: 10 });
const api = new TwilioCallsApiSim(twilio);
let apiUrl = '';

beforeAll(async () => {
  await twin.start();
  apiUrl = await api.start();
});
afterAll(async () => {
  await api.stop();
  await twin.stop();
});

function outcomesOf(run: DaemonProcess, callSid: string): Record<string, unknown>[] {
  return run.output().split('\n').flatMap((line) => {
    try {
      const outcome = (JSON.parse(line) as { outcome?: Record<string, unknown> }).outcome;
      return outcome?.callId === callSid ? [outcome] : [];
    } catch {
      return [];
    }
  });
}

async function ready(run: DaemonProcess): Promise<void> {
  await waitFor(() => run.output().includes('listening for Twilio webhooks'), 'the run to listen for webhooks', 15_000)
    .catch((err: Error) => { throw new Error(`${err.message}\n${run.output()}`); });
}

describe('twilio: a restart while a call is with the bot', () => {
  it('counts each call once in the next run: the caller sent on per after_bot_hangup when the bot hangs up, and a call that ended meanwhile', async () => {
    const port = await freePort();
    const written = writeDaemonConfig({ twin }, (config) => {
      config.twilio = { account_sid: twilio.accountSid, auth_token: twilio.authToken, public_url: LAB_PUBLIC_URL, listen_port: port, api_url: apiUrl };
      config.routes = { default: { bot: 'bot-default', twilio: { after_bot_hangup: { action: 'dial', number: DESK } } } };
    });
    twilio.configureNumber(LAB_PUBLIC_URL, `http://127.0.0.1:${port}`);
    // Long enough for the first run to die and the second to come up before the bot hangs up.
    twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 8000 });
    const runs: DaemonProcess[] = [];
    try {
      const first = runDaemonProcess(written.path);
      runs.push(first);
      await ready(first);
      const call = twilio.placeCall();
      const gone = twilio.placeCall({ from: '+15550111' });
      await waitFor(() => (call.botAnswered && gone.botAnswered) || undefined, 'the bots to answer', 10_000);
      first.child.kill('SIGKILL');
      await first.exited;
      gone.hangup(); // while no run is up: its status callback finds nobody

      const second = runDaemonProcess(written.path);
      runs.push(second);
      await ready(second);
      expect(await call.left).toEqual({ kind: 'dialed-person', target: DESK });
      await waitFor(() => outcomesOf(second, call.sid).length > 0 || undefined, 'the outcome line', 10_000);
      expect(outcomesOf(second, call.sid)).toEqual([
        expect.objectContaining({ status: 'CONNECTED', endedBy: 'bot', pbx: 'twilio', detail: expect.stringMatching(/before the product restarted/) }),
      ]);
      expect(outcomesOf(first, call.sid)).toEqual([]);
      // Twilio's Calls API no longer has it up: counted at the start of the second run.
      expect(outcomesOf(second, gone.sid)).toEqual([
        expect.objectContaining({ status: 'CONNECTED', endedBy: 'unknown', detail: expect.stringMatching(/ended while the product was not running/) }),
      ]);
      expect(outcomesOf(first, gone.sid)).toEqual([]);
    } finally {
      for (const run of runs) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      await Promise.all(runs.map((run) => run.exited));
      rmSync(written.config.state.dir, { recursive: true, force: true });
    }
  }, 40_000);
});
