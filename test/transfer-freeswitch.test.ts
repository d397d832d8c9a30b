/**
 * Issue 14 on FreeSWITCH: the bot hands the caller to a person with a SIP REFER. Through the real
 * daemon and driver against the FreeSWITCH simulator, which plays the recorded s9-refer sequence
 * and runs the shipped twin-transfers.xml logic: with the inbound ESL connection up (the caller is
 * handed back to twin-after-socket, which bridges the bot) and down (the product keeps the call's
 * socket and bridges over it).
 */
import { describe, expect, it } from 'vitest';
import type { Lab } from '../src/sim/lab.js';
import type { SimCall } from '../src/sim/call-model.js';
import { labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('freeswitch');

const FALLBACK = { action: 'continue', context: 'twin-fallback', extension: 'agent' };
const ROUTES = {
  default: { bot: 'b', fallback: FALLBACK, transfers: { operator: 'agents,operator', sales: { context: 'agents', extension: 'sales' } }, transfer_timeout_s: 1 },
};

type Mode = { name: string; inbound: 'up' | 'down' };
const MODES: Mode[] = [
  { name: 'inbound ESL up: the caller was handed back to the dialplan, its socket closed', inbound: 'up' },
  { name: 'inbound ESL down: the product kept the call socket', inbound: 'down' },
];

async function labFor(mode: Mode, routes: Record<string, unknown> = ROUTES): Promise<{ lab: Lab; commands: string[] }> {
  const lab = await startLab({ config: { routes, ...(mode.inbound === 'down' ? { freeswitch: { esl_password: 'not-the-password' } } : {}) } });
  const commands: string[] = [];
  lab.fs.onCommand = (_, line) => commands.push(line);
  return { lab, commands };
}

/** A caller bridged to the bot, in the state the mode is about: handed over (socket closed) or with its socket kept. */
async function bridgedCaller(lab: Lab, mode: Mode): Promise<SimCall> {
  const call = lab.fs.placeCall();
  await waitFor(() => lab.fs.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot bridged');
  if (mode.inbound === 'up') await waitFor(() => lab.fs.channel(call.id)?.session?.closed, 'the call handed over to FreeSWITCH');
  else expect(lab.fs.channel(call.id)!.session!.closed).toBe(false);
  return call;
}

/** After the REFER nothing of ours may touch the caller: no uuid_kill, no uuid_transfer, no TWIN_STATUS of ours. */
function commandsAfterRefer(commands: string[], referAt: number): string[] {
  return commands.slice(referAt).filter((line) => /uuid_kill|uuid_transfer|uuid_setvar/.test(line));
}

async function expectNothingLeft(lab: Lab): Promise<void> {
  await waitFor(() => lab.daemon.activeCalls === 0 && lab.daemon.freeswitch!.activeCalls === 0, 'every call to leave the product');
  await waitFor(() => lab.fs.leftovers().length === 0 || undefined, 'no channel or socket left', 2000).catch(() => undefined);
  expect(lab.fs.leftovers()).toEqual([]);
}

describe('FreeSWITCH: the bot transfers the caller to a person (SIP REFER)', () => {
  it('guards every bridged call: force_transfer_context, the allowed names, timeout and fallback go out with the hand-back, in the command that sets the bot\'s dial string', async () => {
    const { lab } = await labFor(MODES[0]!);
    const commands: string[] = [];
    lab.fs.onCommand = (_, line, app) => commands.push(app ?? line);
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'connected');
    const guard = commands.findIndex((line) => line.includes('force_transfer_context='));
    expect(commands[guard]).toMatch(/^multiset \^\^\|twin_bot_dial=/);
    expect(commands[guard]).toContain('|continue_on_fail=true|playback_timeout_sec=3|force_transfer_context=twin-transfers|twin_transfer_timeout=1|'
      + 'twin_fb_action=continue|twin_fb_context=twin-fallback|twin_fb_extension=agent|twin_xfer_operator=agents/operator|twin_xfer_sales=agents/sales');
    expect(commands.filter((line) => line.includes('force_transfer_context=twin-transfers'))).toHaveLength(1);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  for (const mode of MODES) {
    describe(mode.name, () => {
      it('bot transfers to an allowed target: the caller reaches the destination, TRANSFERRED, nothing left', async () => {
        const { lab, commands } = await labFor(mode);
        const call = await bridgedCaller(lab, mode);
        const referAt = commands.length;
        expect(lab.fs.botRefer(call.id, 'operator')).toBe(true);
        expect(await call.left).toMatchObject({
          kind: 'transferred', target: 'operator', context: 'agents', extension: 'operator',
          vars: { TWIN_STATUS: 'TRANSFERRED', TWIN_TRANSFER_TARGET: 'operator' },
        });
        expect(lab.fs.referrals).toEqual([{ callId: call.id, referTo: 'operator', context: 'twin-transfers' }]);
        expect(lab.fs.personCalls).toEqual([{ callId: call.id, context: 'agents', extension: 'operator' }]);
        expect(lab.fs.channel(call.id)!.vars.has('force_transfer_context')).toBe(false); // the person's transfers are the PBX's again
        call.hangup();
        expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
        expect(commandsAfterRefer(commands, referAt)).toEqual([]);
        await expectNothingLeft(lab);
      });

      it('the person hangs up first: TRANSFERRED, ended by the target', async () => {
        const { lab } = await labFor(mode);
        lab.fs.personBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
        const call = await bridgedCaller(lab, mode);
        lab.fs.botRefer(call.id, 'sales');
        expect(await call.left).toMatchObject({ kind: 'transferred', target: 'sales', extension: 'sales' });
        expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'sales', endedBy: 'target' });
        await expectNothingLeft(lab);
      });

      it('bot transfers to a refused target: the route\'s fallback, TRANSFER_FAILED, never the caller\'s own context', async () => {
        const { lab, commands } = await labFor(mode);
        const call = await bridgedCaller(lab, mode);
        const referAt = commands.length;
        lab.fs.botRefer(call.id, '0900123456');
        expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
        expect(lab.fs.referrals[0]!.context).toBe('twin-transfers');
        expect(lab.fs.personCalls).toEqual([]);
        expect(await lab.outcomeOf(call.id)).toMatchObject({
          status: 'TRANSFER_FAILED', transferTarget: '0900123456', detail: '0900123456 is not among the route\'s transfers',
        });
        expect(commandsAfterRefer(commands, referAt)).toEqual([]);
        await expectNothingLeft(lab);
      });

      it('target does not answer: the route\'s fallback after transfer_timeout_s, TRANSFER_FAILED', async () => {
        const { lab, commands } = await labFor(mode);
        lab.fs.personBehaviour = () => ({ kind: 'no-answer' });
        const call = await bridgedCaller(lab, mode);
        const referAt = commands.length;
        lab.fs.botRefer(call.id, 'operator');
        expect(await call.left).toMatchObject({
          kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'TRANSFER_FAILED', originate_disposition: 'NO_ANSWER' },
        });
        expect(lab.fs.personCalls).toHaveLength(1);
        expect(await lab.outcomeOf(call.id)).toMatchObject({
          status: 'TRANSFER_FAILED', transferTarget: 'operator', detail: 'operator did not take the call (NO_ANSWER)',
        });
        expect(commandsAfterRefer(commands, referAt)).toEqual([]);
        await expectNothingLeft(lab);
      });
    });
  }

  it('a bot with the `refer` behaviour, socket kept (s9-refer): never "bot hung up first", no uuid_kill of the caller', async () => {
    const { lab, commands } = await labFor(MODES[1]!);
    lab.fs.botBehaviour = () => ({ kind: 'answer', afterMs: 5, refer: { afterMs: 20, to: 'operator' } });
    const call = lab.fs.placeCall();
    expect(await call.left).toMatchObject({ kind: 'transferred', target: 'operator' });
    expect(commands.filter((line) => line.startsWith('api uuid_kill') || line.startsWith('api uuid_transfer'))).toEqual([]);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'operator', endedBy: 'caller' });
    await expectNothingLeft(lab);
  });

  it('a busy destination, and a route whose fallback hangs up: the caller is hung up with that cause', async () => {
    const { lab } = await labFor(MODES[0]!, { default: { ...ROUTES.default, fallback: { action: 'hangup', cause: 17 } } });
    lab.fs.personBehaviour = () => ({ kind: 'busy', afterMs: 5 });
    const call = await bridgedCaller(lab, MODES[0]!);
    lab.fs.botRefer(call.id, 'operator');
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', reason: 'USER_BUSY', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFER_FAILED', detail: 'operator did not take the call (USER_BUSY)' });
  });

  it('a route without transfers refuses every REFER (the caller never reaches its own context)', async () => {
    const { lab } = await labFor(MODES[0]!, { default: { bot: 'b', fallback: FALLBACK } });
    const call = await bridgedCaller(lab, MODES[0]!);
    lab.fs.botRefer(call.id, 'operator');
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator' });
  });

  it('a hostile Refer-To user is refused and reaches the outcome encoded, without CR LF', async () => {
    const { lab } = await labFor(MODES[1]!);
    const call = await bridgedCaller(lab, MODES[1]!);
    lab.fs.botRefer(call.id, 'operator\r\nX-Evil: ${system(id)}');
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', vars: { TWIN_STATUS: 'TRANSFER_FAILED' } });
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome).toMatchObject({ status: 'TRANSFER_FAILED', transferTarget: 'operator%0D%0AX-Evil%3A%20%24%7Bsystem%28id%29%7D' });
    expect(JSON.stringify(outcome)).not.toMatch(/\\r|\\n/);
  });

  it('names that differ only in case are refused (FreeSWITCH variables ignore case); one name matches in any case', async () => {
    const routes = { default: { bot: 'b', fallback: FALLBACK, transfers: { Sales: 'agents,s1', sales: 'agents,s2', operator: 'agents,operator' } } };
    const { lab } = await labFor(MODES[0]!, routes);
    const refused = await bridgedCaller(lab, MODES[0]!);
    lab.fs.botRefer(refused.id, 'sales');
    expect(await refused.left).toMatchObject({ kind: 'continued', context: 'twin-fallback' });
    const upper = await bridgedCaller(lab, MODES[0]!);
    lab.fs.botRefer(upper.id, 'OPERATOR');
    expect(await upper.left).toMatchObject({ kind: 'transferred', target: 'OPERATOR', extension: 'operator' });
    upper.hangup();
    expect(await lab.outcomeOf(upper.id)).toMatchObject({ status: 'TRANSFERRED', transferTarget: 'OPERATOR' });
  });

  for (const mode of MODES) {
    it(`the caller hangs up while the destination rings: TRANSFER_FAILED, nothing left (${mode.inbound === 'up' ? 'handed over' : 'socket kept'})`, async () => {
      const { lab } = await labFor(mode);
      lab.fs.personBehaviour = () => ({ kind: 'no-answer' });
      const call = await bridgedCaller(lab, mode);
      lab.fs.botRefer(call.id, 'operator');
      await waitFor(() => lab.fs.personCalls.length === 1, 'the destination ringing');
      call.hangup();
      expect(await call.left).toMatchObject({ kind: 'hungup-by-caller' });
      expect(await lab.outcomeOf(call.id)).toMatchObject({
        status: 'TRANSFER_FAILED', transferTarget: 'operator', detail: 'the call ended before operator answered (NORMAL_CLEARING)',
      });
      await expectNothingLeft(lab);
    });
  }

  it('the bot hanging up without a REFER still gets after_bot_hangup, and the transfer guard is cleared for the dialplan', async () => {
    const { lab } = await labFor(MODES[1]!, { default: { ...ROUTES.default, after_bot_hangup: { action: 'continue', context: 'agents', extension: 'queue' } } });
    lab.fs.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const call = lab.fs.placeCall();
    const left = await call.left;
    expect(left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'queue', vars: { TWIN_STATUS: 'CONNECTED' } });
    expect(left.vars.force_transfer_context).toBeFalsy();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
  });
});
