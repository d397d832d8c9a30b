/**
 * One table of end-to-end cases, run against both PBXs: the real daemon, the Twin simulator and
 * the Asterisk (ARI) or FreeSWITCH (ESL) simulator over loopback sockets. Same names, same
 * expected TWIN_STATUS, same leak check after every case.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { Lab, LabOptions } from '../src/sim/lab.js';
import { parseInviteHeaders } from '../src/sim/call-model.js';
import type { PbxKind, PbxSim } from '../src/sim/pbx-sim.js';
import { labPerTest, waitFor } from './helpers.js';

/** Asterisk runs twice: the bot leg over ARI in a Stasis bridge, and handed to the shipped [twin-bot] dialplan. */
const VARIANTS: { name: string; pbxKind: PbxKind; pbxDefaults?: Record<string, unknown> }[] = [
  { name: 'asterisk (bot_leg: bridge)', pbxKind: 'asterisk', pbxDefaults: { bot_leg: 'bridge' } },
  { name: 'asterisk (bot_leg: dialplan)', pbxKind: 'asterisk', pbxDefaults: { bot_leg: 'dialplan' } },
  { name: 'freeswitch', pbxKind: 'freeswitch' },
];

describe.each(VARIANTS)('$name: answered call to the bot', ({ pbxKind, pbxDefaults }) => {
  const startLab = labPerTest(pbxKind);
  /** The PBX section of the config is named after the PBX; `pbxConfig` merges into it. */
  async function start(options: LabOptions & { pbxConfig?: Record<string, unknown> } = {}): Promise<{ lab: Lab; pbx: PbxSim }> {
    const pbxConfig = { ...pbxDefaults, ...options.pbxConfig };
    const config = { ...options.config, ...(Object.keys(pbxConfig).length > 0 ? { [pbxKind]: pbxConfig } : {}) };
    const lab = await startLab({ ...options, config });
    return { lab, pbx: lab.pbx() };
  }
  const status = (pbx: PbxSim, id: string) => pbx.channelVar(id, 'TWIN_STATUS');

  it('bridges the caller to the bot with Twin id and record header, and sets TWIN_STATUS=CONNECTED', async () => {
    const { lab, pbx } = await start();
    const call = pbx.placeCall({ number: '+15550100', hints: { bot: 'sales', record: '1', var_lang: 'en' } });

    const invite = await waitFor(() => pbx.invites[0], 'the INVITE');
    await waitFor(() => status(pbx, call.id) === 'CONNECTED', 'TWIN_STATUS');
    const warmup = lab.twin.warmups[0]!;
    const twinIds = JSON.parse(warmup.answer!) as Record<string, string>;
    const headers = Object.fromEntries(parseInviteHeaders(invite.raw));
    expect(headers['X-TWIN-CallId']).toMatch(/^[0-9a-f-]{36}$/);
    expect(headers['X-TWIN-CallId']).toBe(twinIds[call.id]);
    expect(headers['X-TWIN-ClientCallId']).toBe(call.id);
    expect(headers['X-TWIN-EnableRecord']).toBe('1');
    expect(invite.requestUri).toBe('sip:twinbot@127.0.0.1:5070');
    expect(warmup.body.returnAnswerAsync).toBe(false);
    expect(warmup.body.calls![0]).toMatchObject({ botSettingsId: 'sales', callerId: '+15550100', variables: { lang: 'en', direction: 'inbound' } });
    expect(pbx.holding(call.id)).toBe('none'); // the ringback stopped once bridged

    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller', bot: 'sales', pbx: pbxKind });
    expect(lab.outcomes).toHaveLength(1);
  });

  it('sends no record header when recording is off', async () => {
    const { lab, pbx } = await start();
    const call = pbx.placeCall({ hints: { record: 'no' } });
    const invite = await waitFor(() => pbx.invites[0], 'the INVITE');
    expect(parseInviteHeaders(invite.raw).map(([n]) => n)).not.toContain('X-TWIN-EnableRecord');
    await waitFor(() => status(pbx, call.id), 'TWIN_STATUS');
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('rejects a call Twin answers null for: hang-up with the route cause, no bot leg', async () => {
    const { lab, pbx } = await start({ config: { routes: { default: { bot: 'b', fallback: { action: 'hangup', cause: 21 } } } } });
    lab.twin.script(() => ({ kind: 'null' }));
    const call = pbx.placeCall();
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', reasonCode: '21', vars: { TWIN_STATUS: 'REJECTED' } });
    expect((await lab.outcomeOf(call.id)).status).toBe('REJECTED');
    expect(pbx.invites).toHaveLength(0);
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('rejects a call Twin answers null for: continue in the dialplan from the route hints', async () => {
    const { lab, pbx } = await start();
    lab.twin.script(() => ({ kind: 'null' }));
    const call = pbx.placeCall({ hints: { fallback_context: 'agents', fallback_extension: 'queue' } });
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'queue', vars: { TWIN_STATUS: 'REJECTED' } });
    expect(pbx.invites).toHaveLength(0);
  });

  it('never lets a route hint choose where the fallback goes beyond a dialplan name: "9999 XML internal" is refused (issue 13, item 7)', async () => {
    const { lab, pbx } = await start();
    lab.twin.script(() => ({ kind: 'null' }));
    const call = pbx.placeCall({ hints: { fallback_context: 'twin-fallback', fallback_extension: '9999 XML internal' } });
    // The route's own fallback (hang up, cause 16), not context `internal`.
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', reasonCode: '16', vars: { TWIN_STATUS: 'REJECTED' } });
    expect((await lab.outcomeOf(call.id)).status).toBe('REJECTED');
  });

  /** What the PBX shows while the trunk waits for its probe call (Asterisk's device states have no PROBING). */
  const probingWord = pbxKind === 'asterisk' ? 'RINGING' : 'PROBING';
  /** How the shipped dialplan's own trunk check sends a caller on without the product. */
  const skippedByDialplan = { kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'THROTTLED' } };

  it('throttles the trunk after a 500: the shipped dialplan skips the product until the cool-down ends, then lets exactly the probe through', async () => {
    const clock = new ManualClock(Date.now());
    const { lab, pbx } = await start({ clock, config: { trunk: { cooldown_s: 180 } } });
    lab.twin.script(() => ({ kind: 'status', status: 500 }));
    expect((await pbx.placeCall().left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
    await waitFor(() => pbx.trunkState() === 'UNAVAILABLE', 'trunk published UNAVAILABLE');

    lab.twin.script(() => ({ kind: 'id' }));
    clock.advance(179_000);
    const skipped = pbx.placeCall();
    expect(await skipped.left).toMatchObject(skippedByDialplan);
    expect(pbx.wasAnnounced(skipped.id)).toBe(false);
    expect(lab.twin.warmups).toHaveLength(1);

    // No call arrives to notice the end of the cool-down: the clock alone reopens the dialplan's check.
    clock.advance(1_000);
    await waitFor(() => pbx.trunkState() === probingWord, `trunk published ${probingWord}`);
    expect(lab.daemon.gate.snapshot()).toMatchObject({ state: 'probing', probeInFlight: false });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 150 }));
    const probe = pbx.placeCall();
    // While the probe is in flight the dialplan skips everyone else.
    await waitFor(() => pbx.trunkState() === 'UNAVAILABLE', 'trunk published UNAVAILABLE during the probe');
    expect(await pbx.placeCall().left).toMatchObject(skippedByDialplan);
    await waitFor(() => status(pbx, probe.id) === 'CONNECTED', 'probe connected');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    await waitFor(() => pbx.trunkState() === 'NOT_INUSE', 'trunk published NOT_INUSE');
    probe.hangup();
    await lab.outcomeOf(probe.id);
    expect(lab.twin.warmups).toHaveLength(2);
  });

  it('throttles again when the probe fails, and probes again at the end of the next cool-down, by the clock', async () => {
    const clock = new ManualClock(Date.now());
    const { lab, pbx } = await start({ clock, config: { trunk: { cooldown_s: 60 } } });
    lab.twin.script(() => ({ kind: 'status', status: 503 }));
    await pbx.placeCall().left;
    clock.advance(60_000);
    await waitFor(() => pbx.trunkState() === probingWord, `trunk published ${probingWord}`);
    expect((await pbx.placeCall().left).vars.TWIN_STATUS).toBe('UNAVAILABLE'); // the probe: Twin still fails
    await waitFor(() => pbx.trunkState() === 'UNAVAILABLE', 'trunk published UNAVAILABLE again');
    expect(lab.daemon.gate.snapshot()).toMatchObject({ state: 'throttled', cooldownUntil: clock.now() + 60_000 });
    expect(await pbx.placeCall().left).toMatchObject(skippedByDialplan);
    lab.twin.script(() => ({ kind: 'id' }));
    clock.advance(60_000);
    await waitFor(() => pbx.trunkState() === probingWord, `trunk published ${probingWord} again`);
    const probe = pbx.placeCall();
    await waitFor(() => status(pbx, probe.id) === 'CONNECTED', 'probe connected');
    await waitFor(() => pbx.trunkState() === 'NOT_INUSE', 'trunk published NOT_INUSE');
    probe.hangup();
    await lab.outcomeOf(probe.id);
  });

  it('lets the next call probe when the probe\'s caller hangs up before Twin answers (no verdict)', async () => {
    const clock = new ManualClock(Date.now());
    const { lab, pbx } = await start({ clock, config: { trunk: { cooldown_s: 60 } } });
    lab.twin.script(() => ({ kind: 'status', status: 500 }));
    await pbx.placeCall().left;
    clock.advance(60_000);
    await waitFor(() => pbx.trunkState() === probingWord, `trunk published ${probingWord}`);
    lab.twin.script(() => ({ kind: 'slow', delayMs: 5_000 }));
    const gone = pbx.placeCall();
    await waitFor(() => pbx.trunkState() === 'UNAVAILABLE', 'closed during the probe');
    gone.hangup();
    await lab.outcomeOf(gone.id);
    await waitFor(() => pbx.trunkState() === probingWord, `trunk published ${probingWord} again`);
    lab.twin.script(() => ({ kind: 'id' }));
    const probe = pbx.placeCall();
    await waitFor(() => status(pbx, probe.id) === 'CONNECTED', 'the second probe connected');
    probe.hangup();
    await lab.outcomeOf(probe.id);
  });

  it('never sends a session older than session.max_age_s: STALE', async () => {
    const clock = new ManualClock(Date.now());
    const { lab, pbx } = await start({ clock });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 100 }));
    const call = pbx.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    clock.advance(171_000); // Twin took longer than the 170 s limit to answer
    expect((await call.left).vars.TWIN_STATUS).toBe('STALE');
    expect(pbx.invites).toHaveLength(0);
  });

  it('plays music on hold instead of ringback during the warm-up when configured, and stops it once bridged', async () => {
    const { lab, pbx } = await start({ pbxConfig: { hold: 'moh' } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 150 }));
    const call = pbx.placeCall();
    await waitFor(() => pbx.holding(call.id) === 'moh', 'music on hold during the warm-up');
    await waitFor(() => status(pbx, call.id), 'connected');
    expect(pbx.holding(call.id)).toBe('none');
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('treats a warm-up timeout as Twin not ready', async () => {
    const { lab, pbx } = await start({ config: { twin: { warmup_timeout_ms: 100 } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 400 }));
    const call = pbx.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
    expect((await lab.outcomeOf(call.id)).detail).toMatch(/no answer within 100 ms/);
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');
  });

  it.each([
    ['garbage body', { kind: 'garbage' as const }],
    ['200 without the call', { kind: 'missing' as const }],
  ])('treats a %s as Twin not ready', async (_, behaviour) => {
    const { lab, pbx } = await start();
    lab.twin.script(() => behaviour);
    expect((await pbx.placeCall().left).vars.TWIN_STATUS).toBe('UNAVAILABLE');
  });

  it('logs in once for many concurrent calls, and once more after a 401', async () => {
    const { lab, pbx } = await start();
    const calls = Array.from({ length: 5 }, () => pbx.placeCall());
    await waitFor(() => pbx.invites.length === 5, '5 INVITEs');
    expect(lab.twin.logins).toBe(1);
    lab.twin.expireTokens();
    const late = pbx.placeCall();
    await waitFor(() => [...calls, late].every((c) => status(pbx, c.id) === 'CONNECTED'), 'all six calls connected');
    expect(lab.twin.logins).toBe(2);
    expect(lab.twin.warmups.map((w) => w.status)).toEqual([200, 200, 200, 200, 200, 401, 200]);
    for (const c of [...calls, late]) c.hangup();
    await lab.outcomesReached(6);
    expect(lab.outcomes.every((o) => o.status === 'CONNECTED')).toBe(true);
  });

  it('plays ringback during the warm-up, and leaves no bot leg when the caller hangs up then', async () => {
    const { lab, pbx } = await start();
    lab.twin.script(() => ({ kind: 'slow', delayMs: 200 }));
    const call = pbx.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    await waitFor(() => pbx.holding(call.id) === 'ring', 'ringback');
    call.hangup();
    expect((await lab.outcomeOf(call.id)).status).toBe('ABANDONED');
    expect(pbx.invites).toHaveLength(0);
  });

  it('sends the caller to the fallback with BOT_FAILED when the bot is busy; the trunk stays open', async () => {
    const { lab, pbx } = await start({ config: { routes: { default: { bot: 'b', fallback: { action: 'continue', context: 'twin-fallback', extension: 'agent' } } } } });
    pbx.setBotBehaviour(() => ({ kind: 'busy' }));
    const call = pbx.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'BOT_FAILED' } });
    expect((await lab.outcomeOf(call.id)).detail).toBe('bot leg busy (SIP 486)');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('counts a bot 503 toward throttling', async () => {
    const { lab, pbx } = await start();
    pbx.setBotBehaviour(() => ({ kind: 'unavailable' }));
    const call = pbx.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('BOT_FAILED');
    expect((await lab.outcomeOf(call.id)).detail).toBe('bot leg unavailable (SIP 503)');
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');
  });

  it('sends the caller to the fallback when the bot does not answer within the answer timeout', async () => {
    const { lab, pbx } = await start({ pbxConfig: { bot_answer_timeout_s: 1 } });
    pbx.setBotBehaviour(() => ({ kind: 'no-answer' }));
    const call = pbx.placeCall();
    expect((await call.left).vars.TWIN_STATUS).toBe('BOT_FAILED');
    expect((await lab.outcomeOf(call.id)).detail).toMatch(/^bot leg no-answer/);
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('continues the caller in the dialplan when the bot hangs up first, if the route says so', async () => {
    const { lab, pbx } = await start({
      config: { routes: { default: { bot: 'b', after_bot_hangup: { action: 'continue', context: 'operators', extension: 's' } } } },
    });
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 }));
    const call = pbx.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'operators', vars: { TWIN_STATUS: 'CONNECTED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
  });

  it('hangs up the caller when the bot hangs up first, by default', async () => {
    const { pbx } = await start();
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 }));
    expect(await pbx.placeCall().left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'CONNECTED' } });
  });

  // ---- the bot's REFER (issue 14); details per PBX in transfer-asterisk / transfer-freeswitch ----
  const transferRoute = (extra: Record<string, unknown> = {}) => ({
    routes: { default: { bot: 'b', transfers: { operator: 'agents,operator' }, transfer_timeout_s: 1, ...extra } },
  });
  /** bot_leg: dialplan: Asterisk transfers from Dial()'s own bridge and the product hears of it at the end only. */
  const asteriskDialplan = pbxDefaults?.bot_leg === 'dialplan';

  it('bot transfers to an allowed target: the caller reaches the person, TWIN_STATUS=TRANSFERRED, outcome TRANSFERRED', async () => {
    const { lab, pbx } = await start({ config: transferRoute() });
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } }));
    const call = pbx.placeCall();
    await waitFor(() => status(pbx, call.id) === 'TRANSFERRED', 'TWIN_STATUS=TRANSFERRED');
    expect(pbx.channelVar(call.id, 'TWIN_TRANSFER_TARGET')).toBe('operator');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
  });

  it('bot transfers to a target the route does not list: refused, never the bot\'s choice of number', async () => {
    const { lab, pbx } = await start({ config: transferRoute() });
    let rung = 0;
    pbx.setPersonBehaviour(() => { rung += 1; return { kind: 'answer' }; });
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: '+442079460999' } }));
    const call = pbx.placeCall();
    if (pbxKind === 'freeswitch') {
      // sofia has already let the bot go: the caller goes to the route's fallback.
      expect(await call.left).toMatchObject({ vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
      expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFER_FAILED' });
    } else {
      // Asterisk refuses the REFER (NOTIFY 603 from the product, or 404 from [twin-transfers]): the bot keeps the caller.
      await waitFor(() => lab.ari.refers[0]?.notifies.some((code) => code >= 400), 'the refusal to reach the bot');
      call.hangup();
      expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    }
    expect(rung).toBe(0);
  });

  it('target does not answer: after transfer_timeout_s the caller goes to the route\'s fallback with TRANSFER_FAILED', async () => {
    const fallback = { action: 'continue', context: 'twin-fallback', extension: 'agent', priority: 1 };
    const { lab, pbx } = await start({ config: transferRoute({ fallback }), ari: { transferRingTimeoutS: 1 } });
    pbx.setPersonBehaviour(() => ({ kind: 'no-answer' }));
    // The bot hangs up right after its REFER, as a bot that has said goodbye would.
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' }, hangupAfterMs: 40 }));
    const call = pbx.placeCall();
    if (asteriskDialplan) {
      // Asterisk moved the caller to [twin-transfers]; ringing and giving up are that dialplan's.
      await waitFor(() => status(pbx, call.id) === 'TRANSFERRED', 'the transfer');
      call.hangup();
      expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator' });
      return;
    }
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator' });
  });

  it('answers BUSY over capacity, without a warm-up, and publishes the trunk as BUSY', async () => {
    const { lab, pbx } = await start({ config: { trunk: { max_concurrent_calls: 1 } } });
    const first = pbx.placeCall();
    await waitFor(() => status(pbx, first.id), 'first call connected');
    await waitFor(() => pbx.trunkState() === 'BUSY', 'trunk published BUSY');
    expect((await pbx.placeCall().left).vars.TWIN_STATUS).toBe('BUSY');
    expect(lab.twin.warmups).toHaveLength(1);
    first.hangup();
    await lab.outcomeOf(first.id);
  });

  it('sends a caller who reached the product later than max_handover_delay_ms to the fallback at once (BUSY, no warm-up), trunk open', async () => {
    const { lab, pbx } = await start({ config: { trunk: { max_handover_delay_ms: 2000 }, http: { listen_port: 0 } } });
    // A prompt caller first: on Asterisk the delay is measured against the quickest hand-over seen.
    const prompt = pbx.placeCall();
    await waitFor(() => status(pbx, prompt.id) === 'CONNECTED', 'the prompt caller connected');
    const onTime = pbx.placeCall({ handoverLagMs: 1500 });
    await waitFor(() => status(pbx, onTime.id) === 'CONNECTED', 'a caller within the bound connected');

    const late = pbx.placeCall({ number: '+15550199', handoverLagMs: 4000 });
    expect((await late.left).vars.TWIN_STATUS).toBe('BUSY');
    const outcome = await lab.outcomeOf(late.id);
    expect(outcome).toMatchObject({ status: 'BUSY', caller: '+15550199' });
    expect(outcome.detail).toMatch(/^reached the product (39|40|41)\d\d ms after the PBX handed it over \(bound 2000 ms\): over capacity$/);
    expect(lab.twin.warmups).toHaveLength(2);
    expect(lab.twin.warmups.flatMap((w) => w.body.calls!.map((c) => c.callerId))).not.toContain('+15550199');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    const metrics = await (await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^twin_connector_calls_shed_total\\{pbx="${pbxKind}"\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^twin_connector_handover_delay_seconds_count\\{pbx="${pbxKind}"\\} 3$`, 'm'));

    for (const call of [prompt, onTime]) call.hangup();
    for (const call of [prompt, onTime]) expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
  });

  it('takes late callers as usual when max_handover_delay_ms is 0', async () => {
    const { lab, pbx } = await start({ config: { trunk: { max_handover_delay_ms: 0 } } });
    const prompt = pbx.placeCall();
    await waitFor(() => status(pbx, prompt.id) === 'CONNECTED', 'the prompt caller connected');
    const late = pbx.placeCall({ handoverLagMs: 8000 });
    await waitFor(() => status(pbx, late.id) === 'CONNECTED', 'the late caller connected');
    for (const call of [prompt, late]) call.hangup();
    for (const call of [prompt, late]) expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
  });

  it('never lets a hostile caller id reach a SIP header or the warm-up JSON unescaped', async () => {
    const { lab, pbx } = await start({
      config: { twin: { sip: { uri: 'sip:twinbot@127.0.0.1:5070', headers: { 'X-TWIN-CallId': '{twin_id}', 'X-TWIN-Caller': '{caller}', 'X-TWIN-Route': '{external_id}' } } } },
    });
    const call = pbx.placeCall({
      number: '+1555\r\nX-Injected: yes',
      name: 'Eve "the\r\nContact: <sip:evil@x>" \u0000',
      hints: { external_id: 'a, b}c' },
    });
    const invite = await waitFor(() => pbx.invites[0], 'the INVITE');
    const headers = parseInviteHeaders(invite.raw);
    expect(headers.map(([n]) => n)).not.toContain('X-Injected');
    expect(headers.filter(([n]) => n === 'Contact')).toHaveLength(1);
    for (const [, value] of invite.headers) expect(value).not.toMatch(/[\r\n\0"<>{}]/);
    // Not a well-formed number: anonymous, never digits glued out of it (issue 22, item 3).
    expect(Object.fromEntries(invite.headers)['X-TWIN-Caller']).toBe('anonymous');
    // The bot sees our cleaned caller id, not the raw one (issue 22, item 2: dial?caller= copied it).
    expect(invite.from).toMatch(/^"Eve theContact sipevilx" <sip:anonymous@/);
    expect(Object.fromEntries(invite.headers)['X-TWIN-Route']).toBe('a, bc');

    const raw = lab.twin.warmups[0]!.raw;
    expect(raw).not.toMatch(/[\r\n\0]/);
    expect(JSON.parse(raw).calls[0].callerId).toBe('anonymous');
    await waitFor(() => status(pbx, call.id), 'connected');
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('takes no call while stopped: the PBX reports the app unavailable so the dialplan falls back', async () => {
    const { lab, pbx } = await start();
    if (pbxKind === 'asterisk') lab.daemon.asterisk!.stop();
    else await lab.daemon.freeswitch!.stop();
    await new Promise((r) => setTimeout(r, 50));
    expect(await pbx.placeCall().left).toMatchObject({ kind: 'app-unavailable' });
    expect(lab.outcomes).toHaveLength(0);
  });
});
