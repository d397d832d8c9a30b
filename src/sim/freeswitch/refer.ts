/**
 * What the simulated FreeSWITCH does when the bot sends a REFER (recording s9-refer): sofia answers
 * 202, BYEs the bot and transfers the caller to the Refer-To user in force_transfer_context (else
 * the caller's own context); in twin-transfers the shipped dialplan's logic runs (twin-transfers.ts)
 * with the person's behaviour. Change REFER handling here.
 */
import { randomUUID } from 'node:crypto';
import { causeCode } from '../../core/q850.js';
import type { PersonBehaviour } from '../call-model.js';
import { appHeaders, eventHeaders, type FsChannel, type RunningApp } from './channel.js';
import { runTwinTransfers, TRANSFERS_CONTEXT, type TransfersHost } from './twin-transfers.js';
import { ShippedDialplan } from './dialplan.js';

export abstract class ReferHandling extends ShippedDialplan {
  /** How the person a transfer rings behaves (the destination's extension, as twin-transfers bridges it). */
  personBehaviour: (destination: { context: string; extension: string }) => PersonBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** Every REFER a bot sent, and every destination a transfer rang, in order. */
  readonly referrals: { callId: string; referTo: string; context: string }[] = [];
  readonly personCalls: { callId: string; context: string; extension: string }[] = [];

  /** The bot of a bridged caller sends its REFER now (Refer-To: sip:<to>@pbx); false if no bot is bridged to it. */
  botRefer(callId: string, to: string): boolean {
    const ch = this.channels.get(callId);
    const bridge = ch?.bot?.state === 'answered' ? ch.running : undefined;
    if (!ch || !bridge || bridge.app !== 'bridge') return false;
    this.botRefers(ch, bridge, to);
    return true;
  }

  /**
   * The bot's in-dialog REFER (s9-refer): sofia answers 202, NOTIFYs 200, BYEs the bot and transfers
   * the caller to the Refer-To user, in force_transfer_context if set, else the caller's own context.
   * The socket (if still open) sees UNBRIDGE (already carrying transfer_history and sip_refer_to),
   * EXECUTE_COMPLETE(bridge), UNPARK, EXECUTE_COMPLETE(socket), two CHANNEL_STATEs, then the new dialplan.
   */
  protected botRefers(ch: FsChannel, running: RunningApp, referTo: string): void {
    if (ch.bot?.state !== 'answered' || ch.state === 'hungup') return;
    const context = ch.vars.get('force_transfer_context') || (ch.profile?.context ?? 'public');
    this.referrals.push({ callId: ch.uuid, referTo, context });
    this.endBot(ch);
    const entry = `${Math.floor(Date.now() / 1000)}:${randomUUID()}:bl_xfer:${referTo}/${context}/XML`;
    const history = ch.vars.get('transfer_history');
    this.setVar(ch, 'transfer_history', history ? `ARRAY::${history.replace(/^ARRAY::/, '')}|:${entry}` : entry);
    this.setVar(ch, 'sip_refer_to', `<sip:${referTo}@127.0.0.1:5090>`);
    this.setVar(ch, 'bridge_hangup_cause', 'NORMAL_CLEARING');
    ch.profile = { destination: referTo, context };
    const underSocket = ch.state === 'socket';
    ch.state = 'transferred';
    ch.queue = [];
    this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    this.complete(ch, running);
    if (underSocket) this.socketAppEnded(ch);
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_ROUTING');
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_EXECUTE');
    if (context === TRANSFERS_CONTEXT) return runTwinTransfers(ch, referTo, this.transfersHost);
    // The caller's own dialplan: whatever it has under that name (the toll-fraud case).
    this.continueTo(ch, referTo, context);
  }

  /** The simulator's side of the twin-transfers model: events, variables, timers, and what the test sees. */
  private readonly transfersHost: TransfersHost = {
    runApp: (ch, app, data, effect) => {
      const uuid = randomUUID();
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders({ app, arg: data, uuid }));
      effect?.();
      this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders({ app, arg: data, uuid }, '_none_'));
      const subclass = app === 'event' ? /Event-Subclass=([^,]*)/.exec(data)?.[1] : undefined;
      if (subclass) this.publishInbound(eventHeaders(ch, 'CUSTOM', 'CS_EXECUTE', [['Event-Subclass', subclass]]));
    },
    appStarted: (ch, app, data) => {
      ch.running = { app, arg: data, uuid: randomUUID() };
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders(ch.running));
    },
    setVar: (ch, name, value) => this.setVar(ch, name, value),
    unsetVar: (ch, name) => { ch.vars.delete(name); },
    later: (ch, fn, ms) => this.later(ch, fn, ms),
    bridged: (ch) => {
      this.emitEvent(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE');
      this.publishInbound(eventHeaders(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE')); // p5: the product's filter lets it through
    },
    unbridged: (ch) => {
      const bridge = ch.running;
      ch.running = undefined;
      this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
      if (bridge) this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(bridge, '_none_'));
    },
    continueTo: (ch, extension, context) => this.continueTo(ch, extension, context),
    hangup: (ch, cause) => this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} }),
    personBehaviour: (destination) => this.personBehaviour(destination),
    personRang: (ch, destination) => this.personCalls.push({ callId: ch.uuid, ...destination }),
    reached: (ch, target, destination) => ch.finish({ kind: 'transferred', target, ...destination, vars: Object.fromEntries(ch.vars) }),
  };
}
