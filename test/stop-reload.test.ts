/**
 * Graceful stop and config reload on both PBXs: while stopping, new calls go to their fallback and
 * live ones go on until they end or the shutdown timeout (on the injected clock) hangs them up;
 * a reload changes routes and capacity for the next call without touching live ones.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { parseConfig } from '../src/config/load.js';
import type { Lab } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';
import { labPerTest, waitFor } from './helpers.js';

describe.each<PbxKind>(['asterisk', 'freeswitch'])('graceful stop and reload on %s', (kind) => {
  const startLab = labPerTest(kind);

  const bridged = (lab: Lab, id: string) => waitFor(() => lab.pbx().channelVar(id, 'TWIN_STATUS') === 'CONNECTED', `call ${id} to be bridged`);

  it('sends new calls to the fallback while live calls go on, then stops when the last one ends', async () => {
    const lab = await startLab({ config: { http: { listen_port: 0, api_token: 'stop-test-token-0123' } } });
    const live = lab.pbx().placeCall();
    await bridged(lab, live.id);
    const port = lab.daemon.httpServer!.port;

    let stopped = false;
    const stopping = lab.daemon.stop().then(() => { stopped = true; });
    const late = lab.pbx().placeCall();
    expect((await late.left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
    expect(lab.twin.warmups).toHaveLength(1); // the late call was not warmed up
    const api = await fetch(`http://127.0.0.1:${port}/v1/calls`, {
      method: 'POST', headers: { authorization: 'Bearer stop-test-token-0123' }, body: JSON.stringify({ to: '+442079460018' }),
    });
    expect(api.status).toBe(503);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);

    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    expect(lab.pbx().channelVar(live.id, 'TWIN_STATUS')).toBe('CONNECTED'); // still talking to the bot
    live.hangup();
    await stopping;
    expect(lab.outcomes.map((o) => [o.callId, o.status])).toEqual([[late.id, 'UNAVAILABLE'], [live.id, 'CONNECTED']]);
  });

  it('hangs up the calls still live when the shutdown timeout ends', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await startLab({ clock, config: { shutdown: { timeout_s: 60 } } });
    const calls = [lab.pbx().placeCall(), lab.pbx().placeCall()];
    for (const call of calls) await bridged(lab, call.id);

    let stopped = false;
    const stopping = lab.daemon.stop().then(() => { stopped = true; });
    await waitFor(() => clock.sleeping > 0, 'the stop to wait for calls');
    clock.advance(59_999);
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    clock.advance(1);
    await stopping;
    for (const call of calls) expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'ERROR' } });
    expect(lab.outcomes.map((o) => o.status)).toEqual(['CONNECTED', 'CONNECTED']);
  });

  it('hangs up at once when told to hurry (a second SIGTERM)', async () => {
    const lab = await startLab();
    const call = lab.pbx().placeCall();
    await bridged(lab, call.id);
    const stopping = lab.daemon.stop(); // 300 s of patience by default
    await new Promise((r) => setTimeout(r, 50));
    lab.daemon.hurry();
    await stopping;
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'ERROR' } });
  });

  it('applies a reloaded config to the next call and keeps the live one; refuses nothing it cannot apply', async () => {
    const lab = await startLab();
    const live = lab.pbx().placeCall();
    await bridged(lab, live.id);

    const next = parseConfig({
      ...JSON.parse(JSON.stringify(lab.config)),
      routes: { default: { bot: 'bot-after-reload' }, table: [] },
      trunk: { cooldown_s: 60, max_concurrent_calls: 1, max_calls_per_second: 50 },
      asterisk: lab.config.asterisk && { ...lab.config.asterisk, app: 'another-app' },
      freeswitch: lab.config.freeswitch && { ...lab.config.freeswitch, listen_port: 9999 },
    }, {});
    const skipped = lab.daemon.reload(next);
    expect(skipped).toEqual([`${kind} changed: takes effect after a restart`]);
    expect(lab.pbx().channelVar(live.id, 'TWIN_STATUS')).toBe('CONNECTED');

    // max_concurrent_calls is now 1 and the live call holds it: the next one is BUSY.
    expect((await lab.pbx().placeCall().left).vars.TWIN_STATUS).toBe('BUSY');
    live.hangup();
    await lab.outcomesReached(2);
    const after = lab.pbx().placeCall();
    await bridged(lab, after.id);
    expect(lab.twin.warmups.at(-1)!.raw).toContain('"botSettingsId":"bot-after-reload"');
    after.hangup();
  });
});
