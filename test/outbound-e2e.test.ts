/**
 * Outbound calls end to end, on both PBXs: warm-up first, the subscriber dialled only with a Twin
 * id, the answered call connected to the bot with that id — or renewed / dropped when the session
 * got too old while the phone rang (injectable clock).
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { Lab, LabOptions } from '../src/sim/lab.js';
import { parseInviteHeaders } from '../src/sim/call-model.js';
import type { PbxKind, PbxSim } from '../src/sim/pbx-sim.js';
import { parseCallRequest, type CallRequestInput } from '../src/outbound/request.js';
import { labPerTest, waitFor } from './helpers.js';

const TO = '+442079460018';
const FROM = '+12025550143';

describe.each<PbxKind>(['asterisk', 'freeswitch'])('%s: outbound call', (pbxKind) => {
  const startLab = labPerTest(pbxKind);
  async function start(options: LabOptions = {}): Promise<{ lab: Lab; pbx: PbxSim; call: (input?: Partial<CallRequestInput>) => ReturnType<Lab['daemon']['placeCall']> }> {
    const lab = await startLab(options);
    const call = (input: Partial<CallRequestInput> = {}) =>
      lab.daemon.placeCall(parseCallRequest({ to: TO, from: FROM, bot: 'sales', ...input }, lab.config));
    return { lab, pbx: lab.pbx(), call };
  }

  it('warms up, dials the subscriber, connects the answer to the bot with the session id', async () => {
    const { lab, pbx, call } = await start();
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    const placed = call({ record: true, variables: { lang: 'en' }, external_id: 'crm-7' });
    const result = await placed.result;

    expect(result).toMatchObject({ id: placed.id, status: 'connected', to: TO, from: FROM, bot: 'sales', pbx: pbxKind, endedBy: 'bot' });
    expect(lab.twin.warmups).toHaveLength(1);
    const warmup = lab.twin.warmups[0]!;
    expect(warmup.body.returnAnswerAsync).toBe(false);
    expect(warmup.body.calls![0]).toMatchObject({ callId: placed.id, number: TO, callerId: FROM, variables: { lang: 'en', direction: 'outbound' } });
    const twinId = (JSON.parse(warmup.answer!) as Record<string, string>)[placed.id];
    expect(result.twinId).toBe(twinId);
    expect(pbx.dials.map((d) => [d.id, d.to, d.from])).toEqual([[placed.id, TO, FROM]]);
    // The warm-up happened before the dial: the Twin id is what reached the bot.
    const headers = Object.fromEntries(parseInviteHeaders(pbx.invites[0]!.raw));
    expect(headers['X-TWIN-CallId']).toBe(twinId);
    expect(headers['X-TWIN-EnableRecord']).toBe('1');
    expect(await pbx.dials[0]!.left).toMatchObject({ kind: 'hungup-by-app' });
  });

  it('never dials a number Twin answers null for', async () => {
    const { lab, pbx, call } = await start();
    lab.twin.script(() => ({ kind: 'null' }));
    expect(await call().result).toMatchObject({ status: 'rejected' });
    expect(pbx.dials).toHaveLength(0);
    expect(pbx.invites).toHaveLength(0);
  });

  it('throttles on a Twin failure: the next call is refused without a warm-up until the cool-down ends', async () => {
    const clock = new ManualClock();
    const { lab, pbx, call } = await start({ clock, config: { trunk: { cooldown_s: 60 } } });
    lab.twin.script(() => ({ kind: 'status', status: 503 }));
    expect(await call().result).toMatchObject({ status: 'unavailable', detail: 'Twin answered HTTP 503' });
    expect(await call().result).toMatchObject({ status: 'throttled' });
    expect(lab.twin.warmups).toHaveLength(1);

    lab.twin.script(() => ({ kind: 'id' }));
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    clock.advance(60_000);
    expect(await call().result).toMatchObject({ status: 'connected' });
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    expect(pbx.dials).toHaveLength(1);
  });

  it.each([
    // The PBX's own words: Asterisk's ChannelDestroyed cause, FreeSWITCH's BACKGROUND_JOB -ERR cause.
    ['busy', { kind: 'busy' as const }, 'busy', /^(cause 17 \(User busy\), SIP 486|USER_BUSY)$/],
    ['no answer', { kind: 'no-answer' as const }, 'no-answer', /^(cause 19 \(User alerting, no answer\), SIP 480|NO_ANSWER)$/],
    ['congestion', { kind: 'unavailable' as const }, 'failed', /^(cause 34 \(Circuit\/channel congestion\), SIP 503|NORMAL_TEMPORARY_FAILURE)$/],
  ])('reports a subscriber who is %s, without a bot leg', async (_name, behaviour, status, detail) => {
    const { lab, pbx, call } = await start({ config: { outbound: { ring_timeout_s: 1 } } });
    pbx.setSubscriberBehaviour(() => behaviour);
    const result = await call().result;
    expect(result).toMatchObject({ status });
    expect(result.detail).toMatch(detail);
    expect(pbx.invites).toHaveLength(0);
    expect(lab.daemon.gate.snapshot().active).toBe(0);
  });

  it('warms up again when the subscriber answers after the session max age, and sends only the fresh id', async () => {
    const clock = new ManualClock();
    const { lab, pbx, call } = await start({ clock });
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    pbx.setSubscriberBehaviour(() => {
      clock.advance(171_000); // the phone rang for 171 s
      return { kind: 'answer', afterMs: 5 };
    });
    const placed = call();
    const result = await placed.result;

    expect(result.status).toBe('connected');
    expect(lab.twin.warmups).toHaveLength(2);
    const ids = lab.twin.warmups.map((w) => (JSON.parse(w.answer!) as Record<string, string>)[placed.id]);
    const headers = Object.fromEntries(parseInviteHeaders(pbx.invites[0]!.raw));
    expect(headers['X-TWIN-CallId']).toBe(ids[1]);
    expect(result.twinId).toBe(ids[1]);
    expect(ids[0]).not.toBe(ids[1]);
  });

  it('drops a subscriber who answers after the session max age with STALE when configured to', async () => {
    const clock = new ManualClock();
    const { lab, pbx, call } = await start({ clock, config: { outbound: { on_stale_session: 'drop' } } });
    pbx.setSubscriberBehaviour(() => {
      clock.advance(170_001);
      return { kind: 'answer', afterMs: 5 };
    });
    expect(await call().result).toMatchObject({ status: 'stale' });
    expect(lab.twin.warmups).toHaveLength(1);
    expect(pbx.invites).toHaveLength(0);
    expect(await pbx.dials[0]!.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'STALE' } });
  });

  it('sends an answered subscriber to the fallback when the bot leg fails', async () => {
    const { pbx, call } = await start();
    pbx.setBotBehaviour(() => ({ kind: 'busy' }));
    expect(await call().result).toMatchObject({ status: 'bot-failed', detail: expect.stringContaining('busy') });
    expect(await pbx.dials[0]!.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'BOT_FAILED' } });
  });

  /** Resolves when the outbound call reaches `state` (the daemon's progress events). */
  function reached(lab: Lab, id: string, state: string): Promise<void> {
    return new Promise((resolve) => lab.daemon.outbound.on('progress', (p: { id: string; state: string }) => {
      if (p.id === id && p.state === state) resolve();
    }));
  }

  // Issue 22, item 5: on an outbound call the answered channel is the subscriber; "caller" would read as us.
  it('says the subscriber hung up first when the subscriber ends the conversation with the bot', async () => {
    const { lab, pbx, call } = await start();
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5 })); // the bot never hangs up
    const placed = call();
    await reached(lab, placed.id, 'connected');
    pbx.dials[0]!.hangup();
    expect(await placed.result).toMatchObject({ status: 'connected', endedBy: 'subscriber' });
  });

  it('says the subscriber hung up while the bot leg rang', async () => {
    const { lab, pbx, call } = await start();
    pbx.setBotBehaviour(() => ({ kind: 'no-answer' }));
    const placed = call();
    await reached(lab, placed.id, 'connecting');
    await waitFor(() => pbx.invites.length === 1, 'the bot leg to ring');
    pbx.dials[0]!.hangup();
    expect(await placed.result).toMatchObject({ status: 'abandoned', detail: 'subscriber hung up while the bot leg rang' });
  });
});
