/**
 * Calls to a Twilio number, end to end: the real daemon with a `twilio:` section, the Twin
 * simulator, and the Twilio stand-in (src/sim/twilio/, written from Twilio's docs, signing with its
 * own code) over loopback HTTP. The same cases as the PBXs' matrix, in Twilio's terms, then bad input.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createLogger } from '../src/log.js';
import type { TwilioLab } from '../src/sim/twilio/twilio-lab.js';
import { twilioLabPerTest } from './twilio-lab-per-test.js';
import { twilioSignature } from '../src/sim/twilio/signer.js';
import { captureLog, waitFor } from './helpers.js';

const start = twilioLabPerTest();

const toPeople = { action: 'dial', number: '+442071234567' };
const withTwilioRoute = (twilio: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ({ routes: { default: { bot: 'bot-default', ...extra, twilio } } });

describe('twilio: a call to a Twilio number', () => {
  it('reaches the bot with the Twin id, the CallSid and the record flag as X- headers of the SIP URI', async () => {
    const lab = await start({ config: withTwilioRoute({}, { record: true }) });
    const call = lab.twilio.placeCall({ from: '+15550100', to: '+15550199' });

    const invite = await waitFor(() => lab.twilio.invites[0], 'the bot INVITE');
    await waitFor(() => call.botAnswered, 'the bot to answer');
    const twinIds = JSON.parse(lab.twin.warmups[0]!.answer!) as Record<string, string>;
    const headers = Object.fromEntries(invite.headers);
    expect(headers['X-TWIN-CallId']).toBe(twinIds[call.sid]);
    expect(headers['X-TWIN-ClientCallId']).toBe(call.sid);
    expect(headers['X-TWIN-EnableRecord']).toBe('1');
    expect(invite.requestUri).toBe('sip:twinbot@127.0.0.1:5070');
    expect(invite.raw).toContain('From: <sip:+15550100@twilio.sim>');
    expect(lab.twin.warmups[0]!.body).toMatchObject({
      returnAnswerAsync: false,
      calls: [{ callId: call.sid, callerId: '+15550100', number: '+15550199', variables: { direction: 'inbound' } }],
    });
    const twiml = lab.twilio.requests[0]!.body;
    expect(twiml).toContain('answerOnBridge="true"');
    expect(twiml).toContain(`action="https://connector.example.test/twilio/dial-action/${call.sid}"`);
    expect(twiml).toMatch(/X-TWIN-CallId=[0-9a-f-]{36}&amp;X-TWIN-ClientCallId=CA[0-9a-f]{32}&amp;X-TWIN-EnableRecord=1<\/Sip>/);

    call.hangup();
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller', pbx: 'twilio', direction: 'inbound', caller: '+15550100' });
    expect(await call.left).toEqual({ kind: 'caller-hung-up', during: 'bot' });
    expect(lab.outcomes).toHaveLength(1);
  });

  it('sends the caller to people when Twin answers null: the route\'s Twilio fallback, no bot leg', async () => {
    const lab = await start({ config: withTwilioRoute({ fallback: toPeople }) });
    lab.twin.script(() => ({ kind: 'null' }));
    const call = lab.twilio.placeCall();
    expect(await call.left).toEqual({ kind: 'dialed-person', target: '+442071234567' });
    expect((await lab.outcomeOf(call.sid)).status).toBe('REJECTED');
    expect(lab.twilio.invites).toHaveLength(0);
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('rejects without answering (<Reject reason="busy">) when the route says so', async () => {
    const lab = await start({ config: withTwilioRoute({ fallback: { action: 'reject', reason: 'busy' } }) });
    lab.twin.script(() => ({ kind: 'null' }));
    const call = lab.twilio.placeCall();
    expect(await call.left).toEqual({ kind: 'rejected', reason: 'busy' });
  });

  it('throttles the trunk after Twin answers 500: the next call goes to people at once, and after the cool-down one probe reopens it', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await start({ clock, config: { trunk: { cooldown_s: 60 }, ...withTwilioRoute({ fallback: toPeople }) } });
    lab.twin.script(() => ({ kind: 'status', status: 500 }));
    const first = lab.twilio.placeCall();
    expect(await first.left).toMatchObject({ kind: 'dialed-person' });
    expect((await lab.outcomeOf(first.sid)).status).toBe('UNAVAILABLE');
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');

    lab.twin.script(() => ({ kind: 'id' }));
    const throttled = lab.twilio.placeCall();
    expect(await throttled.left).toMatchObject({ kind: 'dialed-person' });
    expect((await lab.outcomeOf(throttled.sid)).status).toBe('THROTTLED');
    expect(lab.twin.warmups).toHaveLength(1);

    clock.advance(60_000);
    await waitFor(() => lab.daemon.gate.snapshot().state === 'probing', 'the trunk to wait for its probe');
    const probe = lab.twilio.placeCall();
    await waitFor(() => probe.botAnswered, 'the probe to reach the bot');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    probe.hangup();
    expect((await lab.outcomeOf(probe.sid)).status).toBe('CONNECTED');
  });

  it('BOT_FAILED when the bot is busy: the fallback, the trunk stays open', async () => {
    const lab = await start({ config: withTwilioRoute({ fallback: toPeople }) });
    lab.twilio.botBehaviour = () => ({ kind: 'busy' });
    const call = lab.twilio.placeCall();
    expect(await call.left).toMatchObject({ kind: 'dialed-person' });
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'BOT_FAILED', detail: 'bot leg busy (SIP 486)' });
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('BOT_FAILED with Twin\'s own 503 closes the trunk', async () => {
    const lab = await start();
    lab.twilio.botBehaviour = () => ({ kind: 'unavailable' });
    const call = lab.twilio.placeCall();
    expect(await call.left).toEqual({ kind: 'hangup' });
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'BOT_FAILED', detail: 'bot leg unavailable (SIP 503)' });
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');
  });

  it('BOT_FAILED when the bot does not answer within the answer timeout; the trunk stays open', async () => {
    const lab = await start({ config: { twilio: { bot_answer_timeout_s: 5 } } });
    lab.twilio.botBehaviour = () => ({ kind: 'no-answer' });
    const call = lab.twilio.placeCall();
    await call.left;
    expect((await lab.outcomeOf(call.sid)).status).toBe('BOT_FAILED');
    expect(lab.twilio.requests[0]!.body).toContain('timeout="5"');
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('the bot hangs up first: CONNECTED, endedBy bot, and the caller goes on per after_bot_hangup', async () => {
    const lab = await start({ config: withTwilioRoute({ after_bot_hangup: { action: 'redirect', url: 'https://customer.example/after-bot' } }) });
    lab.twilio.botBehaviour = () => ({ kind: 'answer', hangupAfterMs: 50 });
    const call = lab.twilio.placeCall();
    expect(await call.left).toEqual({ kind: 'redirected', url: 'https://customer.example/after-bot' });
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
  });

  it('at the shutdown timeout, completes a call still with the bot over the Calls API and counts it', async () => {
    const lab = await start();
    lab.twilio.botBehaviour = () => ({ kind: 'answer' }); // the bot never hangs up
    const call = lab.twilio.placeCall();
    await waitFor(() => call.botAnswered || undefined, 'the bot to answer');
    await lab.daemon.stop(50);
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    expect(await call.left).toMatchObject({ kind: 'caller-hung-up' });
    expect(lab.calls.apiRequests).toEqual([
      { method: 'POST', path: expect.stringMatching(new RegExp(`/Calls/${call.sid}\\.json$`)), authorized: true, status: 200 },
    ]);
  });

  it('a caller gone during the warm-up: ABANDONED, and the TwiML then returned dials nobody', async () => {
    let release!: () => void;
    const lab = await start();
    lab.twin.script(() => ({ kind: 'held', until: new Promise<void>((r) => { release = r; }) }));
    const call = lab.twilio.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    call.hangup(); // Twilio's status callback tells the product
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'ABANDONED' });
    release();
    expect(await call.left).toEqual({ kind: 'caller-hung-up', during: 'webhook' });
    expect(lab.twilio.invites).toHaveLength(0);
    expect(lab.twilio.requests.find((r) => r.url.endsWith('/voice'))?.body).not.toContain('<Sip>');
  });

  it('never sends a session older than session.max_age_s: STALE, the fallback, no bot leg', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await start({ clock, config: withTwilioRoute({ fallback: toPeople }) });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 100 }));
    const call = lab.twilio.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    clock.advance(171_000);
    expect(await call.left).toMatchObject({ kind: 'dialed-person' });
    expect((await lab.outcomeOf(call.sid)).status).toBe('STALE');
    expect(lab.twilio.invites).toHaveLength(0);
  });

  it('bounds the warm-up under Twilio\'s 15 s webhook limit (twilio.warmup_timeout_ms): Twin too slow → UNAVAILABLE, fallback in time', async () => {
    const lab = await start({ config: { twin: { warmup_timeout_ms: 15_000 }, twilio: { warmup_timeout_ms: 200 }, ...withTwilioRoute({ fallback: toPeople }) } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 1000 }));
    const call = lab.twilio.placeCall();
    expect(await call.left).toMatchObject({ kind: 'dialed-person' });
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'UNAVAILABLE', detail: expect.stringMatching(/200 ms/) });
  });
});

describe('twilio: bad input on the webhook port', () => {
  /** A valid incoming-call form for the lab's account. */
  function form(lab: TwilioLab, over: Record<string, string> = {}): Record<string, string> {
    return { ...lab.twilio.callParams(`CA${'0123456789abcdef'.repeat(2)}`, {}), CallStatus: 'ringing', ...over };
  }

  it('refuses a missing signature with 403: no warm-up, no call', async () => {
    const lab = await start();
    const res = await lab.twilio.send('-', lab.twilio.voiceUrl, new URLSearchParams(form(lab)).toString(), {});
    expect(res.status).toBe(403);
    expect(lab.twin.warmups).toHaveLength(0);
  });

  it('refuses a forged signature (another token) with 403, and never logs the token', async () => {
    const out = captureLog();
    const lab = await start({ log: createLogger({ level: 'trace', destination: out.stream }) });
    const res = await lab.twilio.post('-', lab.twilio.voiceUrl, form(lab), 'not-the-auth-token');
    expect(res.status).toBe(403);
    expect(lab.twin.warmups).toHaveLength(0);
    await waitFor(() => out.text().includes('Twilio webhook refused'), 'the refusal logged');
    expect(out.text()).not.toContain(lab.twilio.authToken);
  });

  it('refuses a signature replayed with other parameters (403), and a replay of a call already taken (403)', async () => {
    const lab = await start();
    const params = form(lab);
    const signature = twilioSignature(lab.twilio.authToken, lab.twilio.voiceUrl, params);
    const changed = new URLSearchParams({ ...params, To: '+19005550000' }).toString();
    expect((await lab.twilio.send('-', lab.twilio.voiceUrl, changed, { 'x-twilio-signature': signature })).status).toBe(403);
    expect(lab.twin.warmups).toHaveLength(0);

    const original = new URLSearchParams(params).toString();
    expect((await lab.twilio.send('-', lab.twilio.voiceUrl, original, { 'x-twilio-signature': signature })).status).toBe(200);
    expect((await lab.twilio.send('-', lab.twilio.voiceUrl, original, { 'x-twilio-signature': signature })).status).toBe(403);
    expect(lab.twin.warmups).toHaveLength(1);
    // The product answered a <Dial> for the first one; this test plays a Twilio that never dials it: the caller hangs up.
    await lab.twilio.post('-', lab.twilio.statusUrl, { ...params, CallStatus: 'completed' });
    expect((await lab.outcomeOf(params.CallSid!)).status).toBe('ABANDONED');
  });

  it('refuses an unknown AccountSid with 403, even correctly signed', async () => {
    const lab = await start();
    const res = await lab.twilio.post('-', lab.twilio.voiceUrl, form(lab, { AccountSid: `AC${'f'.repeat(32)}` }));
    expect(res.status).toBe(403);
    expect(lab.twin.warmups).toHaveLength(0);
  });

  it('refuses an oversized body with 413 and goes on serving', async () => {
    const lab = await start();
    const res = await lab.twilio.post('-', lab.twilio.voiceUrl, form(lab, { Junk: 'x'.repeat(100_000) }));
    expect(res.status).toBe(413);
    const call = lab.twilio.placeCall();
    await waitFor(() => call.botAnswered, 'the next call to reach the bot');
    call.hangup();
    await lab.outcomeOf(call.sid);
  });

  it.each([
    ['markup and quotes', '<Hangup/>&"\'</Sip>'],
    ['CR LF header injection', '+1555\r\nX-Evil: 1'],
    ['300 characters', '9'.repeat(300)],
  ])('a From with %s never breaks the TwiML or the SIP URI, and never reaches Twin raw', async (_, hostile) => {
    const lab = await start();
    const call = lab.twilio.placeCall({ from: hostile, to: `+1555<&>"${hostile}`, callerName: hostile });
    const invite = await waitFor(() => lab.twilio.invites[0], 'the bot INVITE'); // the stand-in parsed the TwiML strictly
    expect(invite.headers.map(([n]) => n)).toEqual(['X-TWIN-CallId', 'X-TWIN-ClientCallId']);
    expect(invite.raw).not.toContain('X-Evil');
    expect(invite.raw).toContain('From: <sip:anonymous@twilio.sim>');
    const warmup = lab.twin.warmups[0]!;
    expect(warmup.body.calls![0]).toMatchObject({ callerId: 'anonymous', number: 'anonymous' });
    expect(warmup.raw).not.toContain('X-Evil');
    await waitFor(() => call.botAnswered, 'the bot to answer');
    call.hangup();
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'CONNECTED', caller: 'anonymous', dialed: 'anonymous' });
  });

  it('answers 404 to paths it does not serve and 405 to GET, without a warm-up', async () => {
    const lab = await start();
    expect((await lab.twilio.post('-', 'https://connector.example.test/twilio/other', form(lab))).status).toBe(404);
    const local = `http://127.0.0.1:${lab.daemon.twilio!.port}/twilio/voice`;
    expect((await fetch(local)).status).toBe(405);
    expect(lab.twin.warmups).toHaveLength(0);
  });
});
