/**
 * The bot's transfer on a call to a Twilio number: `<Dial referUrl>` on the bot's leg, the signed
 * referUrl request with the Refer-To, and TwiML that dials only what the route's `twilio.transfers`
 * lists for that name. Over loopback HTTP with the stand-in (src/sim/twilio/, from Twilio's docs).
 */
import { describe, expect, it } from 'vitest';
import { twilioLabPerTest } from './twilio-lab-per-test.js';
import { referToName } from '../src/pbx/twilio/twilio-call.js';
import { waitFor } from './helpers.js';

const start = twilioLabPerTest();

const DESK = '+442071234567';
const withTransfers = (transfers: Record<string, string>, fallback: Record<string, unknown> = { action: 'dial', number: '+442079460000' }) =>
  ({ config: { routes: { default: { bot: 'bot-default', twilio: { transfers, fallback } } } } });

describe('twilio: the bot transfers the caller', () => {
  it('dials the destination the route allows for the Refer-To name: TRANSFERRED, the person hung up first', async () => {
    const lab = await start(withTransfers({ operator: DESK, desk: 'sip:desk@pbx.example.com' }));
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } });
    lab.twilio.personBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 });
    const call = lab.twilio.placeCall();

    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'target', pbx: 'twilio' });
    expect(await call.left).toEqual({ kind: 'hangup' });
    expect(lab.twilio.refers).toEqual([{ to: 'operator', outcome: 'accepted' }]);
    expect(lab.twilio.transfers).toEqual([{ target: DESK, status: 'completed' }]);
    const dialBot = lab.twilio.requests[0]!.body;
    expect(dialBot).toContain(`referUrl="https://connector.example.test/twilio/refer/${call.sid}"`);
  });

  it('refuses a name the route does not list (<Reject/> to the referUrl): the caller stays with the bot', async () => {
    const lab = await start(withTransfers({ operator: DESK }));
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 120, refer: { afterMs: 20, to: '+19005550123' } });
    const call = lab.twilio.placeCall();

    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
    expect(lab.twilio.refers).toEqual([{ to: '+19005550123', outcome: 'refused', why: 'Reject' }]);
    expect(lab.twilio.transfers).toEqual([]);
    const refer = lab.twilio.requests.find((r) => r.url.includes('/refer/'))!;
    expect(refer.body).toMatch(/<Response><Reject\/><\/Response>/);
  });

  it('sends the caller to the route\'s fallback when nobody takes the transfer: TRANSFER_FAILED', async () => {
    const lab = await start(withTransfers({ operator: DESK }));
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } });
    lab.twilio.personBehaviour = () => ({ kind: 'busy', afterMs: 5 });
    const call = lab.twilio.placeCall();

    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator', detail: 'transfer busy' });
    expect(await call.left).toEqual({ kind: 'dialed-person', target: '+442079460000' });
  });

  it('counts a caller who hangs up while talking to the person: TRANSFERRED, the caller hung up first', async () => {
    const lab = await start(withTransfers({ operator: DESK }));
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } });
    lab.twilio.personBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    const call = lab.twilio.placeCall();
    await waitFor(() => lab.twilio.refers.length > 0, 'the REFER');
    await new Promise((r) => setTimeout(r, 50));
    call.hangup();
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
  });

  it('gives Twin\'s trunk slot back once the REFER is accepted, while the person still rings', async () => {
    const lab = await start({ config: { ...withTransfers({ operator: DESK }).config, trunk: { max_concurrent_calls: 1 } } });
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } });
    lab.twilio.personBehaviour = () => ({ kind: 'answer', afterMs: 400, hangupAfterMs: 30 });
    const call = lab.twilio.placeCall();
    await waitFor(() => lab.twilio.refers.length > 0, 'the REFER');
    await waitFor(() => lab.daemon.gate.snapshot().active === 0, 'the slot given back');
    expect(lab.twilio.transfers).toEqual([]); // the person has not answered yet

    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const next = lab.twilio.placeCall();
    expect(await lab.outcomeOf(next.sid)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'target' });
  });

  it('gives no referUrl when the route has no Twilio transfers: Twilio refuses the REFER itself', async () => {
    const lab = await start();
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 80, refer: { afterMs: 20, to: 'operator' } });
    const call = lab.twilio.placeCall();
    expect(await lab.outcomeOf(call.sid)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
    expect(lab.twilio.requests[0]!.body).not.toContain('referUrl');
    expect(lab.twilio.refers).toEqual([{ to: 'operator', outcome: 'refused', why: 'no referUrl (13802)' }]);
  });

  it('reads only a plain name from the Refer-To', () => {
    expect(referToName('<sip:operator@twilio.example;transport=tcp?X-A=1>')).toBe('operator');
    expect(referToName('sip:+442071234567@host')).toBe('+442071234567');
    expect(referToName('tel:+15550100')).toBe('+15550100');
    expect(referToName('<sip:a"b@host>')).toBeUndefined();
    expect(referToName('http://evil/')).toBeUndefined();
    expect(referToName('<sip:@host>')).toBeUndefined();
  });
});
