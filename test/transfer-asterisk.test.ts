/**
 * Issue 14 on Asterisk: the bot hands the caller to a person with a SIP REFER. The simulator
 * plays the recorded sequences (second-recording/refer-ari-only, refer-ari-only-decline,
 * refer-core, refer-product-core).
 */
import { describe, expect, it } from 'vitest';
import { transferHandlingOf } from '../src/pbx/asterisk/driver.js';
import { labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('asterisk');

const transfers = { operator: { context: 'agents', extension: 's' }, sales: 'agents,sales' };
const fallback = { action: 'continue', context: 'twin-fallback', extension: 'agent', priority: 1 };

function config(handling: 'ari' | 'core', extra: Record<string, unknown> = {}) {
  return {
    asterisk: { transfer_handling: handling, bot_leg: 'bridge' },
    routes: { default: { bot: 'bot-default', fallback, transfers, transfer_timeout_s: 2, ...extra } },
  };
}

describe('Asterisk: the bot transfers the caller to a person (REFER)', () => {
  it('ari-only: an allowed target is rung by the product; on its answer the caller talks to it and the bot is let go with NOTIFY 200', async () => {
    const lab = await startLab({ config: config('ari') });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' } });
    lab.ari.personBehaviour = (context, extension) => (context === 'agents' && extension === 's' ? { kind: 'answer', afterMs: 20 } : { kind: 'busy' });
    const call = lab.ari.placeCall();
    const botId = await waitFor(() => lab.ari.botLegOf(call.id)?.id, 'the bot leg');
    await waitFor(() => lab.ari.channel(botId)?.vars.get('PJSIP_TRANSFER_HANDLING()') === 'ari-only', 'ari-only on the bot leg');
    // Should ari-only not take, Asterisk's own transfer still looks only in twin-transfers.
    expect(lab.ari.channel(botId)!.vars.get('TRANSFER_CONTEXT')).toBe('twin-transfers');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'TRANSFERRED', 'TWIN_STATUS=TRANSFERRED');
    expect(lab.ari.channel(call.id)!.vars.get('TWIN_TRANSFER_TARGET')).toBe('operator');
    await waitFor(() => lab.ari.channel(botId) === undefined, 'the bot leg to be hung up');
    expect(lab.ari.peersOf(call.id)).toEqual([expect.stringMatching(/^Local\/s@agents-[0-9a-f]+;1$/)]);
    expect(lab.ari.refers).toEqual([expect.objectContaining({ to: 'operator', handling: 'ari', notifies: [100, 200] })]);
    expect(lab.daemon.gate.snapshot().active).toBe(0); // Twin's part is over: its slot is free
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
  });

  it('ari-only: a target the route does not list is declined (NOTIFY 603) and the call with the bot goes on', async () => {
    const lab = await startLab({ config: config('ari') });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: '+4420790000' } });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.refers[0]?.notifies.includes(603), 'NOTIFY 603 to the bot');
    expect(lab.ari.peersOf(call.id)).toEqual([expect.stringMatching(/^PJSIP\/twin-/)]);
    expect(lab.ari.leftovers().channels.filter((name) => name.startsWith('Local/'))).toEqual([]);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('ari-only: a name that is only an inherited property of the map (constructor) is declined too', async () => {
    const lab = await startLab({ config: config('ari') });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'constructor' } });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.refers[0]?.notifies.includes(603), 'NOTIFY 603 to the bot');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it('ari-only: the target does not answer in time → NOTIFY 503, the bot keeps the caller; if the bot has left, the route\'s fallback', async () => {
    const lab = await startLab({ config: config('ari', { transfer_timeout_s: 1 }) });
    lab.ari.personBehaviour = () => ({ kind: 'no-answer' });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' } });
    const stays = lab.ari.placeCall();
    await waitFor(() => lab.ari.refers[0]?.notifies.includes(503), 'NOTIFY 503 to the bot', 4000);
    expect(lab.ari.peersOf(stays.id)).toEqual([expect.stringMatching(/^PJSIP\/twin-/)]);
    stays.hangup();
    expect(await lab.outcomeOf(stays.id)).toMatchObject({ status: 'CONNECTED' });

    // This bot hangs up right after its REFER: the caller hears music while nobody answers, then goes to the fallback.
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' }, hangupAfterMs: 60 });
    const left = lab.ari.placeCall();
    await waitFor(() => lab.ari.bridgeMoh(left.id), 'music on hold in the caller\'s bridge');
    expect(await left.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    expect(await lab.outcomeOf(left.id)).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator' });
  });

  it('ari-only: after a transfer nobody answered, the bot may try another target; the first try\'s late end changes nothing', async () => {
    const lab = await startLab({ config: config('ari', { transfer_timeout_s: 1 }) });
    lab.ari.personBehaviour = (_context, extension) => (extension === 's' ? { kind: 'no-answer' } : { kind: 'answer', afterMs: 10 });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } });
    const call = lab.ari.placeCall();
    const botId = await waitFor(() => lab.ari.botLegOf(call.id)?.id, 'the bot leg');
    await waitFor(() => lab.ari.refers[0]?.notifies.includes(503), 'NOTIFY 503 for the first try', 4000);
    lab.ari.botRefers(botId, 'sales');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'TRANSFERRED', 'the second try to be answered');
    await waitFor(() => lab.ari.channel(botId) === undefined, 'the bot leg to be let go');
    expect(lab.ari.peersOf(call.id)).toEqual([expect.stringMatching(/^Local\/sales@agents-/)]);
    expect(lab.ari.channel(`twin-${call.id}-xfer2`)).toBeDefined();
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'sales', endedBy: 'caller' });
  });

  it('ari-only: a bot that hangs up right after its REFER leaves the caller with music, then with the person who answers', async () => {
    const lab = await startLab({ config: config('ari') });
    lab.ari.personBehaviour = () => ({ kind: 'answer', afterMs: 300 });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' }, hangupAfterMs: 40 });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.bridgeMoh(call.id), 'music while the transfer rings');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'TRANSFERRED', 'the person to answer');
    await waitFor(() => !lab.ari.bridgeMoh(call.id), 'the music to stop');
    expect(lab.ari.peersOf(call.id)).toEqual([expect.stringMatching(/^Local\/s@agents-/)]);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
  });

  it('ari-only: the person hangs up first → the caller is hung up, outcome TRANSFERRED ended by the target', async () => {
    const lab = await startLab({ config: config('ari') });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'sales' } });
    const call = lab.ari.placeCall();
    const xferId = `twin-${call.id}-xfer1`;
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'TRANSFERRED', 'transferred');
    expect(lab.ari.channel(xferId)!.name).toMatch(/^Local\/sales@agents-/);
    lab.ari.botHangsUp(xferId); // the person's BYE
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app' });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'sales', endedBy: 'target' });
  });

  it('core handling: the Local channel Asterisk puts in our bridge is never a new call; the caller ends up with the person (recording refer-product-core)', async () => {
    const lab = await startLab({ config: config('core') });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' } });
    const call = lab.ari.placeCall();
    const botId = await waitFor(() => lab.ari.botLegOf(call.id)?.id, 'the bot leg');
    await waitFor(() => lab.ari.channel(botId)?.vars.get('TRANSFER_CONTEXT') === 'twin-transfers', 'TRANSFER_CONTEXT on the bot leg');
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'TRANSFERRED', 'TWIN_STATUS=TRANSFERRED');
    expect(lab.ari.peersOf(call.id)).toEqual([expect.stringMatching(/^Local\/operator@twin-transfers-[0-9a-f]+;1$/)]);
    await waitFor(() => lab.ari.channel(botId) === undefined, 'the bot leg, left out of the bridge, to be hung up');
    expect(lab.ari.invites).toHaveLength(1); // no second warm-up and bot INVITE for the Local channel
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
    expect(lab.outcomes).toHaveLength(1);
  });

  it('core handling: a REFER to a name [twin-transfers] does not list is refused by Asterisk itself; nothing moves', async () => {
    const lab = await startLab({ config: config('core') });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: '900' } });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.refers[0], 'the REFER');
    expect(lab.ari.refers[0]).toMatchObject({ handling: 'refused', notifies: [100, 404] });
    expect(lab.ari.peersOf(call.id)).toEqual([expect.stringMatching(/^PJSIP\/twin-/)]);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it('core handling: a target in the dialplan but not in the route is hung up, and the caller goes to the fallback', async () => {
    const lab = await startLab({ config: config('core', { transfers: { sales: 'agents,sales' } }) });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' } });
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator' });
  });

  it('core handling: the person does not answer → the route\'s fallback', async () => {
    const lab = await startLab({ config: config('core'), ari: { transferRingTimeoutS: 1 } });
    lab.ari.personBehaviour = () => ({ kind: 'no-answer' });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' } });
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator' });
  });

  it('bot_leg dialplan: the REFER is looked up in [twin-transfers] (never the bot endpoint\'s context) and the outcome says TRANSFERRED', async () => {
    const lab = await startLab({ config: { ...config('core'), asterisk: { bot_leg: 'dialplan' } } });
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 30, to: 'operator' } });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.refers[0], 'the REFER');
    expect(lab.ari.channel(call.id)!.vars.get('TWIN_BOT')).toContain('^TRANSFER_CONTEXT=twin-transfers');
    expect(lab.ari.refers[0]).toMatchObject({ to: 'operator', handling: 'core' });
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
  });

  it('finds the REFER handling from the Asterisk version (ari-only came with 20.13, 21.8, 22.3)', () => {
    expect(['20.12.0', '20.13.0', '21.7.1', '21.8.0', '22.2.0', '22.3.0', '22.10.1', '23.0.0', '18.26.0', '20.7-cert5', 'GIT-master-abc']
      .map(transferHandlingOf)).toEqual(['core', 'ari', 'core', 'ari', 'core', 'ari', 'ari', 'ari', 'core', 'core', 'core']);
  });
});
