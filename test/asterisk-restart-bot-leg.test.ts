/**
 * A run killed (SIGKILL) while a caller's bot leg rings: the next run picks the caller up and opens
 * a new bot leg, while it hangs up the earlier run's leg it finds in the app. The two legs must not
 * share a channel id. With the same id (twin-<caller>-bot), Asterisk refuses the new leg while the
 * old one is still there (409: the caller went to the fallback, BOT_FAILED), and once the old one is
 * being hung up, its end (cause 16, tech cause 603) was read as the new leg's failure: BOT_FAILED
 * and the trunk to Twin throttled for cooldown_s (seen on Asterisk 22.10.1, bench/real-pbx faults:
 * kill -9 at 50 calls/s, 250 callers skipped by the dialplan's trunk check afterwards).
 */
import { describe, expect, it } from 'vitest';
import { runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig } from './daemon-process.js';
import { waitFor } from './helpers.js';

const { twin, ari } = simulatorsForProcessTests();

describe('Asterisk: a caller picked up after a restart gets a bot leg of its own', () => {
  it('connects the caller, hangs up the earlier run\'s leg and keeps the trunk open', async () => {
    const { path: configPath } = writeDaemonConfig({ twin, ari }, (config) => { config.asterisk.bot_leg = 'bridge'; });
    const first = runDaemonProcess(configPath);
    await waitFor(() => first.output().includes('connected to Asterisk ARI'), 'the first run to connect', 15_000);
    ari.botBehaviour = () => ({ kind: 'no-answer' }); // the first run's bot leg rings on
    const call = ari.placeCall();
    await waitFor(() => ari.botLegOf(call.id)?.dialled, 'the bot leg to be dialled', 10_000);
    const oldLeg = ari.botLegOf(call.id)!.id;
    first.child.kill('SIGKILL');
    await first.exited;

    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    // The new run looks at the earlier run's leg after it has opened the caller's new one (the order
    // seen on the real Asterisk, where the old leg's end came after the new leg's create).
    ari.delayReply = (method, path) => (method === 'GET' && path === `/channels/${oldLeg}/variable` ? 500 : 0);
    const second = runDaemonProcess(configPath);
    try {
      await waitFor(() => /"outcome"|caller connected to the bot/.test(second.output()), 'the caller to be picked up and sent on', 15_000)
        .catch((err: Error) => { throw new Error(`${err.message}\n${second.output()}`); });
      await waitFor(() => ari.channel(oldLeg) === undefined, 'the earlier run\'s bot leg to be hung up');
      expect(second.output()).toContain('caller connected to the bot');
      expect(ari.channel(call.id)?.vars.get('TWIN_STATUS'), second.output()).toBe('CONNECTED');
      expect(ari.botLegOf(call.id)?.id).not.toBe(oldLeg);
      expect(second.output()).not.toContain('trunk to Twin is throttled');
      call.hangup();
      await waitFor(() => ari.leftovers().channels.length === 0 && ari.leftovers().bridges.length === 0 ? true : undefined,
        'nothing left in Asterisk', 5000).catch(() => { throw new Error(`left: ${JSON.stringify(ari.leftovers())}\n${second.output()}`); });
      await waitFor(() => second.output().includes('"status":"CONNECTED"'), 'the call\'s outcome line');
    } finally {
      ari.delayReply = undefined;
      second.child.kill('SIGTERM');
    }
    expect(await second.exited).toBe(0);
  }, 60_000);
});
