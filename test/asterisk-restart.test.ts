/**
 * The product crashes (SIGKILL) while Asterisk holds its calls, and starts again: a call the first
 * run had bridged is ended by the second run when one side hangs up (nobody is left alone in a
 * bridge), and a caller who was waiting for the warm-up is picked up and connected.
 */
import { describe, expect, it } from 'vitest';
import { runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig } from './daemon-process.js';
import { waitFor } from './helpers.js';

const { twin, ari } = simulatorsForProcessTests();

describe('Asterisk: the product restarts with calls in progress', () => {
  it('ends the calls the first run bridged when one side hangs up, and picks up a caller left waiting', async () => {
    const { path: configPath } = writeDaemonConfig({ twin, ari }, (config) => { config.asterisk.bot_leg = 'bridge'; });
    const connected = (id: string) => ari.channel(id)?.vars.get('TWIN_STATUS') === 'CONNECTED';

    const first = runDaemonProcess(configPath);
    await waitFor(() => first.output().includes('connected to Asterisk ARI'), 'the first run to connect', 15_000);
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5 }); // the bots stay on the line
    const botHangsUp = ari.placeCall();
    const callerHangsUp = ari.placeCall();
    await waitFor(() => connected(botHangsUp.id) && connected(callerHangsUp.id), 'two calls to be bridged', 10_000);
    twin.script(() => ({ kind: 'slow', delayMs: 60_000 })); // Twin is slow: the first run dies during this warm-up
    const waiting = ari.placeCall();
    await waitFor(() => twin.warmups.length === 3, 'the third call to be warming up');

    first.child.kill('SIGKILL');
    await first.exited;
    // Asterisk keeps the bridged calls, and the bridge made ready during the warm-up.
    expect(ari.leftovers().bridges).toHaveLength(3);

    twin.script(() => ({ kind: 'id' }));
    const second = runDaemonProcess(configPath);
    try {
      await waitFor(() => connected(waiting.id) && twin.warmups.length === 4, 'the waiting caller to be picked up and connected', 15_000)
        .catch((err: Error) => { throw new Error(`${err.message}\n${second.output()}`); });
      await waitFor(() => second.output().includes('watching a call bridged by an earlier run'), 'the bridged calls to be watched');

      const botOf = (callerId: string) => ari.botLegOf(callerId)?.id ?? 'gone';
      expect(ari.channel(botOf(botHangsUp.id))?.state).toBe('Up'); // still talking after the restart
      ari.botHangsUp(botOf(botHangsUp.id)); // the bot hangs up: its caller must not stay alone
      const left = await Promise.race([botHangsUp.left, new Promise((r) => setTimeout(() => r('still in the bridge after 5 s'), 5000))]);
      expect(left).toMatchObject({ kind: 'hungup-by-app' });

      callerHangsUp.hangup();
      await waitFor(() => ari.channel(botOf(callerHangsUp.id)) === undefined, 'the bot leg of the caller who hung up to be gone');
      waiting.hangup();
      await waitFor(() => ari.leftovers().channels.length === 0 && ari.leftovers().bridges.length === 0 ? true : undefined,
        'nothing left in Asterisk', 5000).catch(() => { throw new Error(`left: ${JSON.stringify(ari.leftovers())}\n${second.output()}`); });
    } finally {
      second.child.kill('SIGTERM');
    }
    expect(await second.exited).toBe(0);
  }, 60_000);
});
