/** Asterisk-only behaviour; the cases shared with FreeSWITCH are in e2e-matrix.test.ts. */
import { describe, expect, it } from 'vitest';
import { parseInviteHeaders } from '../src/sim/call-model.js';
import { merge, type LabOptions } from '../src/sim/lab.js';
import { labPerTest, waitFor } from './helpers.js';
import { ManualClock } from '../src/clock.js';

const startInLab = labPerTest('asterisk');
/** These tests are about bridge mode unless they name bot_leg (the default, auto, picks dialplan when [twin-bot] exists). */
const startLab = (options: LabOptions = {}) => startInLab({ ...options, config: merge({ asterisk: { bot_leg: 'bridge' } }, options.config) });

describe('Asterisk (ARI) specifics', () => {
  it('needs at most 6 ARI requests up to the dial, and bridges both legs in the call\'s own bridge', async () => {
    const lab = await startLab();
    const before = lab.ari.totalRequests();
    const call = lab.ari.placeCall({ args: ['record=1'] });
    const invite = await waitFor(() => lab.ari.invites[0], 'the INVITE');
    expect(lab.ari.totalRequests() - before).toBeLessThanOrEqual(6);
    expect(Object.fromEntries(parseInviteHeaders(invite.raw))['X-TWIN-EnableRecord']).toBe('1');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'TWIN_STATUS');

    const botLeg = lab.ari.botLegOf(call.id)!;
    expect(botLeg.bridgeId).toBe(`twin-${call.id}`);
    expect(lab.ari.channel(call.id)!.bridgeId).toBe(botLeg.bridgeId);
    call.hangup();
    await lab.outcomeOf(call.id);
    expect(lab.outcomes).toHaveLength(1); // the bot leg's own StasisStart was not taken for a call
    expect(lab.ari.channel(botLeg.id)).toBeUndefined();
  });

  it('dials the bot leg only once Asterisk has put it in Stasis (create answers first: recording create-dial-race)', async () => {
    const lab = await startLab({ ari: { stasisEntryDelayMs: () => 15 } });
    const dials: string[] = [];
    lab.ari.onRequest = (method, path) => { if (method === 'POST' && path.includes('/dial')) dials.push(path); };
    const calls = Array.from({ length: 5 }, () => lab.ari.placeCall());
    for (const call of calls) {
      await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'connected');
      expect(lab.ari.channel(call.id)!.vars.get('TWIN_STATUS')).toBe('CONNECTED');
    }
    expect(dials).toHaveLength(5); // one dial per call: none was refused and sent again
    calls.forEach((call) => call.hangup());
    for (const call of calls) expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
  });

  it('bot_leg dialplan: hands the caller to [twin-bot] with one variable, 3 ARI requests per call, no bridge or bot channel of ours', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    const before = lab.ari.totalRequests();
    const call = lab.ari.placeCall({ args: ['record=1'], name: 'Ann "A"' });
    const invite = await waitFor(() => lab.ari.invites[0], 'the INVITE');
    expect(lab.ari.channel(call.id)!.vars.get('TWIN_BOT')).toMatch(/^PJSIP\/twin\/sip:twinbot@127\.0\.0\.1:5070\^\d+\^PJSIP_HEADER\(add,X-TWIN-CallId\)=/);
    expect(Object.fromEntries(parseInviteHeaders(invite.raw))['X-TWIN-EnableRecord']).toBe('1');
    expect(invite.from).toContain('"Ann A" <sip:+15551230000@'); // our cleaned caller id, not the raw one
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    expect(lab.ari.totalRequests() - before).toBe(3); // ring, the variable, continue ([twin-bot] stops the ring)
    expect(lab.ari.leftovers().bridges).toEqual([]);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    expect(lab.daemon.activeCalls).toBe(0);
  });

  it('bot_leg dialplan with the shipped Playtones(ring) (ringback=dialplan): 2 ARI requests per call, the ring heard until [twin-bot] (issue 20, item 2)', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    const held = new Promise<void>((resolve) => { lab.twin.script(() => ({ kind: 'held', until: new Promise((r) => setTimeout(r, 50)).then(() => resolve()) })); });
    const before = lab.ari.totalRequests();
    const call = lab.ari.placeCall({ args: ['record=1', 'ringback=dialplan'] });
    await held;
    expect(lab.ari.channel(call.id)?.ringing).toBe(true); // during the warm-up
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    expect(lab.ari.totalRequests() - before).toBe(2); // the variable, continue
    expect(lab.ari.channel(call.id)?.ringing).toBe(false);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it('bot_leg dialplan: setupMs counts to the bot\'s answer, not from the caller\'s own ANSWEREDTIME_MS (issue 22, item 1)', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 20 });
    const placedAt = performance.now();
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    await new Promise((r) => setTimeout(r, 50)); // the call goes on after the answer
    call.hangup();
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome.setupMs).toBeGreaterThanOrEqual(20); // the bot answers 20 ms after its INVITE
    expect(outcome.setupMs).toBeLessThanOrEqual(performance.now() - placedAt);
  });

  it('bot_leg dialplan: the bot hanging up first sends the caller to after_bot_hangup, endedBy bot (Dial() with g; issue 22, item 1)', async () => {
    const lab = await startLab({
      config: { asterisk: { bot_leg: 'dialplan' }, routes: { default: { bot: 'b', after_bot_hangup: { action: 'continue', context: 'operators', extension: 's' } } } },
    });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 });
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'operators', extension: 's' });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
  });

  it('bot_leg dialplan: a continue whose answer is lost but which Asterisk carried out keeps the caller with the bot (issue 22, fault d)', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    lab.ari.loseReply = (method, path) => method === 'POST' && path.endsWith('/continue');
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    await new Promise((r) => setTimeout(r, 300)); // the product asked where the caller is, and left it there
    expect(lab.ari.channel(call.id)?.dialplan.context).toBe('twin-bot');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('bot_leg dialplan: the bot variable or the continue dropped by a connection reset before Asterisk read it is sent again', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    const dropped = { variable: 0, continue: 0 };
    lab.ari.dropRequest = (method, path) => {
      if (method !== 'POST') return false;
      if (path.includes('/variable') && path.includes('_TWIN_BOT')) return dropped.variable++ === 0;
      return path.includes('/continue') && dropped.continue++ === 0;
    };
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    expect(dropped).toEqual({ variable: 2, continue: 2 }); // each dropped once, then carried out
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('bot_leg dialplan: a continue refused by Asterisk still sends the caller to its fallback', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.failRequest = (method, path) => (method === 'POST' && path.endsWith('/continue') ? 500 : undefined);
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app' });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'BOT_FAILED' });
  });

  it('bot_leg dialplan: a caller back from the bot dialplan of an earlier run is hung up, not left in the app', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.botBehaviour = () => ({ kind: 'answer', hangupAfterMs: 300 });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    lab.daemon.asterisk!.stop(); // the product goes away while the call is in Asterisk's hands
    await new Promise((r) => setTimeout(r, 50));
    await lab.daemon.asterisk!.start();
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app' });
  });

  it('bot_leg dialplan: a hang-up report lost while ARI was away is made up for at the reconnect', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    lab.ari.booting = true;
    lab.ari.dropWebSockets();
    call.hangup(); // the hangup handler's Stasis() finds no app: no report
    await new Promise((r) => setTimeout(r, 150));
    lab.ari.booting = false;
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('bot_leg dialplan: a dial report lost while ARI was away (the caller went on to twin-fallback) is counted once at the reconnect', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 100 });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    lab.ari.booting = true;
    lab.ari.dropWebSockets(); // the bot hangs up meanwhile: Dial() returns, its Stasis() finds no app
    expect(await call.left).toMatchObject({ kind: 'app-unavailable' });
    lab.ari.booting = false;
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', detail: expect.stringMatching(/report was lost while ARI was away/) });
    expect(lab.ari.channel(call.id)?.dialplan.context).toBe('twin-fallback'); // left with people, untouched
    expect(lab.outcomes.filter((o) => o.callId === call.id)).toHaveLength(1);
    call.hangup();
  });

  it('bot_leg dialplan: a dial report that reached the app but not the product (its StasisStart lost) is taken from the channel at the reconnect', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 100 });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    lab.ari.losingEvents = true; // the websocket died without Asterisk noticing yet
    // The bot hangs up: Dial() returns and the report's Stasis() enters the app, its StasisStart goes nowhere.
    await waitFor(() => lab.ari.channel(call.id)?.dialplan.app_data?.includes('twin_report=dial'), 'the caller back in the app with its report');
    lab.ari.losingEvents = false;
    lab.ari.dropWebSockets(); // noticed now: the product reconnects
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
    expect(await call.left).not.toMatchObject({ kind: 'hungup-by-caller' }); // sent on by the product, not left waiting
  });

  it('after shedding a late caller, shows Custom:twin-trunk ONHOLD for 300 ms: people take the next caller without Stasis(), then calls flow again', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await startInLab({ clock, config: { trunk: { max_handover_delay_ms: 1000 } } });
    const prompt = lab.ari.placeCall(); // the quickest hand-over seen is what lateness is counted from
    await waitFor(() => lab.ari.channel(prompt.id)?.vars.get('TWIN_STATUS') === 'CONNECTED' || undefined, 'the prompt caller connected');
    const late = lab.ari.placeCall({ stasisLagMs: 3000 });
    expect(await lab.outcomeOf(late.id)).toMatchObject({ status: 'BUSY' });
    await waitFor(() => lab.pbx().trunkState() === 'ONHOLD' || undefined, 'Custom:twin-trunk ONHOLD');

    const next = lab.ari.placeCall();
    expect(await next.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'BUSY' } });
    expect(lab.ari.wasAnnounced(next.id)).toBe(false); // never in Stasis

    clock.advance(300);
    await waitFor(() => lab.pbx().trunkState() === 'NOT_INUSE' || undefined, 'Custom:twin-trunk NOT_INUSE again');
    const onTime = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(onTime.id)?.vars.get('TWIN_STATUS') === 'CONNECTED' || undefined, 'the next caller connected');
    for (const call of [prompt, onTime]) call.hangup();
    for (const call of [prompt, onTime]) expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
  });

  it('a caller Asterisk itself took 500 ms to bring to the app: Custom:twin-trunk INUSE for 5 s, so the shipped [from-customers-answered] skips Playtones(ring); then it rings again', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await startInLab({ clock });
    const held = () => lab.twin.script(() => ({ kind: 'held', until: new Promise((r) => setTimeout(r, 30)) }));
    held();
    const late = lab.ari.placeCall({ context: 'from-customers-answered', args: ['ringback=dialplan'], createdBeforeStasisMs: 500 });
    expect(lab.ari.channel(late.id)?.ringing).toBe(true); // the check ran before the product knew
    await waitFor(() => lab.pbx().trunkState() === 'INUSE' || undefined, 'Custom:twin-trunk INUSE');

    const quiet = lab.ari.placeCall({ context: 'from-customers-answered', args: ['ringback=dialplan'] });
    expect(lab.ari.channel(quiet.id)?.ringing).toBe(false); // waits in silence, but is served
    await waitFor(() => lab.ari.channel(quiet.id)?.vars.get('TWIN_STATUS') === 'CONNECTED' || undefined, 'the quiet caller connected');

    clock.advance(5000);
    await waitFor(() => lab.pbx().trunkState() === 'NOT_INUSE' || undefined, 'Custom:twin-trunk NOT_INUSE again');
    const ringing = lab.ari.placeCall({ context: 'from-customers-answered', args: ['ringback=dialplan'] });
    expect(lab.ari.channel(ringing.id)?.ringing).toBe(true);
    await waitFor(() => lab.ari.channel(ringing.id)?.vars.get('TWIN_STATUS') === 'CONNECTED' || undefined, 'the next caller connected');
    for (const call of [late, quiet, ringing]) call.hangup();
    for (const call of [late, quiet, ringing]) expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
  });

  it('the shipped [from-customers] leaves the caller\'s phone ringing (Ringing(): no tone from Asterisk) and the bot\'s Dial() answers it', async () => {
    const lab = await startLab({ config: { asterisk: { bot_leg: 'dialplan' } } });
    const held = new Promise<void>((resolve) => { lab.twin.script(() => ({ kind: 'held', until: new Promise((r) => setTimeout(r, 50)).then(() => resolve()) })); });
    const call = lab.ari.placeCall({ args: ['ringback=dialplan'] });
    await held;
    expect(lab.ari.channel(call.id)).toMatchObject({ state: 'Ring', ringing: true }); // during the warm-up: not answered
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    expect(lab.ari.channel(call.id)).toMatchObject({ state: 'Up', ringing: false });
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it('bot_leg bridge: a caller left ringing by the shipped dialplan is answered by the product with the bot, not before', async () => {
    const lab = await startLab();
    const held = new Promise<void>((resolve) => { lab.twin.script(() => ({ kind: 'held', until: new Promise((r) => setTimeout(r, 50)).then(() => resolve()) })); });
    const call = lab.ari.placeCall({ args: ['ringback=dialplan'] });
    await held;
    expect(lab.ari.channel(call.id)?.state).toBe('Ring');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot answered');
    await waitFor(() => lab.ari.channel(call.id)?.state === 'Up' || undefined, 'the caller answered');
    expect(lab.ari.channel(call.id)!.bridgeId).toBe(lab.ari.botLegOf(call.id)!.bridgeId);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it.each([
    { has: true, mode: 'dialplan' },
    { has: false, mode: 'bridge' },
  ])('bot_leg auto (the default): $mode when Asterisk\'s dialplan has [twin-bot] is $has', async ({ has, mode }) => {
    // Without the include, the simulated dialplan has no [twin-bot] (the sim names it otherwise).
    const lab = await startInLab({ ari: has ? {} : { botDialContext: 'twin-bot-not-included' } });
    expect(lab.daemon.asterisk!.botLeg).toBe(mode);
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'connected');
    expect(lab.ari.leftovers().bridges.length > 0).toBe(mode === 'bridge'); // bridge mode bridges in a bridge of ours
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it('sends the caller to the fallback even when setting TWIN_STATUS gets no answer (issue 13, item 2)', async () => {
    const lab = await startLab({ config: { asterisk: { request_timeout_ms: 300 } } });
    lab.twin.script(() => ({ kind: 'null' }));
    lab.ari.delayReply = (method, path) => (method === 'POST' && path.endsWith('/variable') ? 1000 : 0);
    const call = lab.ari.placeCall({ args: ['fallback_context=agents', 'fallback_extension=queue'] });
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'queue' });
    expect((await lab.outcomeOf(call.id)).status).toBe('REJECTED');
  });

  for (const botLeg of ['bridge', 'dialplan'] as const) {
    it(`bot_leg ${botLeg}: a caller whose continue to the fallback keeps failing is hung up, not left in the app (issue 13, item 2)`, async () => {
      const lab = await startLab({ config: { asterisk: { bot_leg: botLeg } } });
      lab.twin.script(() => ({ kind: 'null' }));
      lab.ari.failRequest = (method, path) => (method === 'POST' && path.endsWith('/continue') ? 500 : undefined);
      const call = lab.ari.placeCall({ args: ['fallback_context=agents', 'fallback_extension=queue'] });
      expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'REJECTED' } });
      expect((await lab.outcomeOf(call.id)).status).toBe('REJECTED');
    });
  }

  it('keeps hanging up a caller whose every exit request failed until Asterisk takes it: never hidden as finished (issue 13, item 2)', async () => {
    const lab = await startLab();
    lab.twin.script(() => ({ kind: 'null' }));
    let refusing = true;
    const exitRequest = (method: string, path: string) => path.endsWith('/continue') || (method === 'DELETE' && /^\/channels\/[^/]+$/.test(path));
    lab.ari.failRequest = (method, path) => (refusing && exitRequest(method, path) ? 500 : undefined);
    const call = lab.ari.placeCall({ args: ['fallback_context=agents', 'fallback_extension=queue'] });
    expect((await lab.outcomeOf(call.id)).status).toBe('REJECTED'); // the flow is over ...
    expect(lab.ari.channel(call.id)?.app).toBe('twin'); // ... and the caller still in the app
    refusing = false; // ARI answers again: the driver's next hang-up goes through
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app' });
  });

  it('after a restart, hangs up a caller left in the app whose flow an earlier run ended (TWIN_STATUS set) (issue 13, item 2)', async () => {
    const lab = await startLab();
    lab.twin.script(() => ({ kind: 'null' }));
    lab.ari.failRequest = (method, path) => (path.endsWith('/continue') || (method === 'DELETE' && /^\/channels\/[^/]+$/.test(path)) ? 500 : undefined);
    const call = lab.ari.placeCall({ args: ['fallback_context=agents', 'fallback_extension=queue'] });
    await lab.outcomeOf(call.id);
    lab.daemon.asterisk!.stop(); // the product stops (or dies) while the caller is still in the app
    lab.ari.failRequest = undefined;
    await lab.daemon.asterisk!.start(); // the next run finds it at its reconcile
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'REJECTED' } });
  });

  it('continues at the dialplan priority given in the Stasis hints', async () => {
    const lab = await startLab();
    lab.twin.script(() => ({ kind: 'null' }));
    const call = lab.ari.placeCall({ args: ['fallback_context=agents', 'fallback_extension=queue', 'fallback_priority=2'] });
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'queue', priority: 2 });
  });

  it('settles a call whose hang-up happened while the ARI websocket was down', async () => {
    const lab = await startLab();
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'connected');
    lab.ari.booting = true; // keep the app away for a moment
    lab.ari.dropWebSockets();
    call.hangup(); // StasisEnd is lost: Asterisk does not queue events
    await new Promise((r) => setTimeout(r, 150));
    lab.ari.booting = false;
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('keeps a bridged call through a websocket drop and handles its later hang-up', async () => {
    const lab = await startLab();
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'connected');
    lab.ari.dropWebSockets();
    await waitFor(() => lab.daemon.asterisk!.state === 'connected' && lab.ari.leftovers().channels.length === 2 ? true : undefined, 'reconnected');
    await new Promise((r) => setTimeout(r, 400)); // ari-client reconnects after 100 ms
    const next = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(next.id)?.vars.get('TWIN_STATUS'), 'a new call after the reconnect');
    call.hangup();
    next.hangup();
    expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
    expect((await lab.outcomeOf(next.id)).status).toBe('CONNECTED');
  });

  it('picks up a call whose StasisStart was lost with the websocket and runs its call flow after the reconnect', async () => {
    const lab = await startLab();
    lab.ari.losingEvents = true; // the socket is dead but Asterisk has not noticed yet
    const stranded = lab.ari.placeCall({ args: ['bot=picked-up'] });
    lab.ari.booting = true;
    lab.ari.dropWebSockets();
    lab.ari.losingEvents = false;
    expect(lab.ari.channel(stranded.id)?.app).toBe('twin'); // in the app, with nobody handling it
    lab.ari.booting = false;
    await waitFor(() => lab.ari.channel(stranded.id)?.vars.get('TWIN_STATUS'), 'the stranded call to be picked up');
    expect(lab.ari.channel(stranded.id)?.vars.get('TWIN_STATUS')).toBe('CONNECTED');
    expect(lab.twin.warmups.at(-1)!.raw).toContain('"botSettingsId":"picked-up"');
    stranded.hangup();
    expect(await lab.outcomeOf(stranded.id)).toMatchObject({ status: 'CONNECTED', bot: 'picked-up' });
  });

  it('after a reconnect, does not take a call that arrives while the channel list is on its way for a call that is gone', async () => {
    const lab = await startLab();
    let listed = false;
    lab.ari.delayReply = (method, path) => (method === 'GET' && path === '/channels' ? ((listed = true), 200) : 0);
    lab.ari.dropWebSockets();
    await waitFor(() => listed, 'the product to list the channels after reconnecting');
    const call = lab.ari.placeCall(); // enters Stasis after Asterisk made the list it is still sending
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'the call to be bridged');
    await new Promise((r) => setTimeout(r, 400)); // the late list has arrived and been judged
    expect(lab.outcomes.find((o) => o.callId === call.id)).toBeUndefined(); // still talking to the bot
    expect(lab.ari.leftovers()).toEqual({ channels: ['PJSIP/caller-00000001', 'PJSIP/twin-00000001'], bridges: [`twin-${call.id}`] });
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });
});
