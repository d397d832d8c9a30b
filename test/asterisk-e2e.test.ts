import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { Lab, type LabOptions } from '../src/sim/lab.js';
import { parseInviteHeaders } from '../src/sim/asterisk/model.js';
import { expectNoLeftovers, waitFor } from './helpers.js';

let lab: Lab | undefined;

async function startLab(options: LabOptions = {}): Promise<Lab> {
  lab = await Lab.start(options);
  return lab;
}

afterEach(async () => {
  if (lab) {
    await expectNoLeftovers(lab);
    await lab.stop();
    lab = undefined;
  }
});

describe('Asterisk: answered call to the bot', () => {
  it('bridges the caller to the bot with Twin id and record header, and sets TWIN_STATUS=CONNECTED', async () => {
    const lab = await startLab();
    const call = lab.ari.placeCall({ number: '+15550100', args: ['bot=sales', 'record=1', 'var_lang=en'] });

    const invite = await waitFor(() => lab.ari.invites[0], 'the INVITE');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'TWIN_STATUS');
    const warmup = lab.twin.warmups[0]!;
    const sent = warmup.body.calls![0]!;
    const twinId = JSON.parse(warmup.answer!) as Record<string, string>;
    const headers = Object.fromEntries(parseInviteHeaders(invite.raw));
    expect(headers['X-TWIN-CallId']).toMatch(/^[0-9a-f-]{36}$/);
    expect(headers['X-TWIN-CallId']).toBe(twinId[call.id]);
    expect(headers['X-TWIN-ClientCallId']).toBe(call.id);
    expect(headers['X-TWIN-EnableRecord']).toBe('1');
    expect(invite.requestUri).toBe('sip:twinbot@127.0.0.1:5070');
    expect(warmup.body.returnAnswerAsync).toBe(false);
    expect(sent).toMatchObject({ botSettingsId: 'sales', callerId: '+15550100', variables: { lang: 'en', direction: 'inbound' } });

    const botLeg = lab.ari.channel(`twin-${call.id}-bot`)!;
    expect(botLeg.bridgeId).toBe(`twin-${call.id}`);
    expect(lab.ari.channel(call.id)!.bridgeId).toBe(botLeg.bridgeId);
    expect(lab.ari.channel(call.id)!.ringing).toBe(false);

    call.hangup();
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome).toMatchObject({ status: 'CONNECTED', endedBy: 'caller', bot: 'sales' });
    expect(lab.outcomes).toHaveLength(1); // the bot leg's own StasisStart was not taken for a call
    expect(lab.ari.channel(botLeg.id)).toBeUndefined();
  });

  it('sends no record header when recording is off, and needs at most 6 ARI requests up to the dial', async () => {
    const lab = await startLab();
    const before = lab.ari.totalRequests();
    const call = lab.ari.placeCall({ args: ['record=no'] });
    const invite = await waitFor(() => lab.ari.invites[0], 'the INVITE');
    const upToDial = lab.ari.totalRequests() - before;
    expect(upToDial).toBeLessThanOrEqual(6);
    expect(parseInviteHeaders(invite.raw).map(([n]) => n)).not.toContain('X-TWIN-EnableRecord');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'TWIN_STATUS');
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('rejects a call Twin answers null for: hang-up with the route cause, no bot leg', async () => {
    const lab = await startLab({ config: { routes: { default: { bot: 'b', fallback: { action: 'hangup', cause: 21 } } } } });
    lab.twin.script(() => ({ kind: 'null' }));
    const call = lab.ari.placeCall();
    const left = await call.left;
    expect(left).toMatchObject({ kind: 'hungup-by-app', reasonCode: '21', vars: { TWIN_STATUS: 'REJECTED' } });
    expect((await lab.outcomeOf(call.id)).status).toBe('REJECTED');
    expect(lab.ari.invites).toHaveLength(0);
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('rejects a call Twin answers null for: continue in the dialplan from the Stasis hints', async () => {
    const lab = await startLab();
    lab.twin.script(() => ({ kind: 'null' }));
    const call = lab.ari.placeCall({ args: ['fallback_context=agents', 'fallback_extension=queue', 'fallback_priority=2'] });
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'queue', priority: 2, vars: { TWIN_STATUS: 'REJECTED' } });
    expect(lab.ari.invites).toHaveLength(0);
  });

  it('throttles the trunk after a 500: later calls are THROTTLED without a warm-up until the cool-down ends, then one probe', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await startLab({ clock, config: { trunk: { cooldown_s: 180 } } });
    lab.twin.script(() => ({ kind: 'status', status: 500 }));
    const first = lab.ari.placeCall();
    expect((await first.left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
    await waitFor(() => lab.ari.deviceState('Custom:twin-trunk') === 'UNAVAILABLE', 'device state UNAVAILABLE');

    lab.twin.script(() => ({ kind: 'id' }));
    clock.advance(179_000);
    const throttled = lab.ari.placeCall();
    expect((await throttled.left).vars.TWIN_STATUS).toBe('THROTTLED');
    expect(lab.twin.warmups).toHaveLength(1);

    clock.advance(1_000);
    lab.twin.script(() => ({ kind: 'slow', delayMs: 150 }));
    const probe = lab.ari.placeCall();
    await waitFor(() => lab.twin.warmups.length === 2, 'the probe warm-up');
    const duringProbe = lab.ari.placeCall();
    expect((await duringProbe.left).vars.TWIN_STATUS).toBe('THROTTLED');
    await waitFor(() => lab.ari.channel(probe.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'probe connected');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    await waitFor(() => lab.ari.deviceState('Custom:twin-trunk') === 'NOT_INUSE', 'device state NOT_INUSE');
    probe.hangup();
    await lab.outcomeOf(probe.id);
    expect(lab.twin.warmups).toHaveLength(2);
  });

  it('never sends a session older than session.max_age_s: STALE', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await startLab({ clock });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 100 }));
    const call = lab.ari.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    clock.advance(171_000); // Twin took longer than the 170 s limit to answer
    expect((await call.left).vars.TWIN_STATUS).toBe('STALE');
    expect(lab.ari.invites).toHaveLength(0);
  });

  it('plays music on hold instead of ringback when configured, and stops it once bridged', async () => {
    const lab = await startLab({ config: { asterisk: { hold: 'moh' } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 100 }));
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.moh, 'music on hold during the warm-up');
    expect(lab.ari.channel(call.id)!.ringing).toBe(false);
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'connected');
    expect(lab.ari.channel(call.id)!.moh).toBe(false);
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('treats a warm-up timeout as Twin not ready', async () => {
    const lab = await startLab({ config: { twin: { warmup_timeout_ms: 100 } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 400 }));
    const call = lab.ari.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome.detail).toMatch(/no answer within 100 ms/);
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');
  });

  it.each([
    ['garbage body', { kind: 'garbage' as const }],
    ['200 without the call', { kind: 'missing' as const }],
  ])('treats a %s as Twin not ready', async (_, behaviour) => {
    const lab = await startLab();
    lab.twin.script(() => behaviour);
    const call = lab.ari.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
  });

  it('logs in once for many concurrent calls, and once more after a 401', async () => {
    const lab = await startLab();
    const calls = Array.from({ length: 5 }, () => lab.ari.placeCall());
    await waitFor(() => lab.ari.invites.length === 5, '5 INVITEs');
    const connected = (c: { id: string }) => lab.ari.channel(c.id)?.vars.get('TWIN_STATUS') === 'CONNECTED';
    expect(lab.twin.logins).toBe(1);
    lab.twin.expireTokens();
    const late = lab.ari.placeCall();
    await waitFor(() => [...calls, late].every(connected), 'all six calls connected');
    expect(lab.twin.logins).toBe(2);
    expect(lab.twin.warmups.map((w) => w.status)).toEqual([200, 200, 200, 200, 200, 401, 200]);
    for (const c of [...calls, late]) c.hangup();
    await lab.outcomesReached(6);
    expect(lab.outcomes.every((o) => o.status === 'CONNECTED')).toBe(true);
  });

  it('leaves no bot leg when the caller hangs up during the warm-up', async () => {
    const lab = await startLab();
    lab.twin.script(() => ({ kind: 'slow', delayMs: 200 }));
    const call = lab.ari.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    call.hangup();
    expect((await lab.outcomeOf(call.id)).status).toBe('ABANDONED');
    expect(lab.ari.invites).toHaveLength(0);
  });

  it('sends the caller to the fallback with BOT_FAILED when the bot is busy; the trunk stays open', async () => {
    const lab = await startLab({ config: { routes: { default: { bot: 'b', fallback: { action: 'continue', context: 'twin-fallback', extension: 'agent' } } } } });
    lab.ari.botBehaviour = () => ({ kind: 'busy' });
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'BOT_FAILED' } });
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome.detail).toBe('bot leg busy (SIP 486)');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('counts a bot 503 toward throttling', async () => {
    const lab = await startLab();
    lab.ari.botBehaviour = () => ({ kind: 'unavailable' });
    const call = lab.ari.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('BOT_FAILED');
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');
  });

  it('sends the caller to the fallback when the bot does not answer within the answer timeout', async () => {
    const lab = await startLab({ config: { asterisk: { bot_answer_timeout_s: 1 } } });
    lab.ari.botBehaviour = () => ({ kind: 'no-answer' });
    const call = lab.ari.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('BOT_FAILED');
    expect((await lab.outcomeOf(call.id)).detail).toBe('bot leg no-answer (SIP 480)');
  });

  it('continues the caller in the dialplan when the bot hangs up first, if the route says so', async () => {
    const lab = await startLab({
      config: { routes: { default: { bot: 'b', after_bot_hangup: { action: 'continue', context: 'operators', extension: 's' } } } },
    });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 });
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'operators', vars: { TWIN_STATUS: 'CONNECTED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
  });

  it('hangs up the caller when the bot hangs up first, by default', async () => {
    const lab = await startLab();
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 });
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'CONNECTED' } });
  });

  it('answers BUSY over capacity, without a warm-up, and publishes the trunk as BUSY', async () => {
    const lab = await startLab({ config: { trunk: { max_concurrent_calls: 1 } } });
    const first = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(first.id)?.vars.get('TWIN_STATUS'), 'first call connected');
    await waitFor(() => lab.ari.deviceState('Custom:twin-trunk') === 'BUSY', 'device state BUSY');
    const second = lab.ari.placeCall();
    expect((await second.left).vars.TWIN_STATUS).toBe('BUSY');
    expect(lab.twin.warmups).toHaveLength(1);
    first.hangup();
    await lab.outcomeOf(first.id);
  });

  it('never lets a hostile caller id reach a SIP header or the warm-up JSON unescaped', async () => {
    const lab = await startLab({
      config: { twin: { sip: { uri: 'sip:twinbot@127.0.0.1:5070', headers: { 'X-TWIN-CallId': '{twin_id}', 'X-TWIN-Caller': '{caller}' } } } },
    });
    const hostileNumber = '+1555\r\nX-Injected: yes';
    const hostileName = 'Eve "the\r\nContact: <sip:evil@x>" \u0000';
    const call = lab.ari.placeCall({ number: hostileNumber, name: hostileName });
    const invite = await waitFor(() => lab.ari.invites[0], 'the INVITE');
    const headers = parseInviteHeaders(invite.raw);
    expect(headers.map(([n]) => n)).not.toContain('X-Injected');
    expect(headers.filter(([n]) => n === 'Contact')).toHaveLength(1);
    for (const [, value] of invite.headers) expect(value).not.toMatch(/[\r\n\0"<>]/);
    expect(Object.fromEntries(invite.headers)['X-TWIN-Caller']).toBe('+1555');

    const raw = lab.twin.warmups[0]!.raw;
    expect(raw).not.toMatch(/[\r\n\0]/);
    expect(JSON.parse(raw).calls[0].callerId).toBe('+1555');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'connected');
    call.hangup();
    await lab.outcomeOf(call.id);
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
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
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

  it('sends nothing to a stopped product: Stasis() fails at once so the dialplan falls back', async () => {
    const lab = await startLab();
    lab.daemon.asterisk!.stop();
    await new Promise((r) => setTimeout(r, 50));
    const call = lab.ari.placeCall({ app: 'twin' });
    expect(await call.left).toMatchObject({ kind: 'app-unavailable', vars: { STASISSTATUS: 'FAILED' } });
  });
});
