/**
 * What every simulated PBX has alike, whatever its protocol (Asterisk's ARI, FreeSWITCH's ESL, the
 * Twilio stand-in): the far ends a test scripts (the bot, the subscribers the product
 * dials), what the PBX sent them, the benchmark's hooks, and timers that die with their call.
 */
import { performance } from 'node:perf_hooks';
import type { BotBehaviour, SimDial, SimInvite } from './call-model.js';

export abstract class SimulatedPbx {
  /** How the bot answers the INVITE the PBX sends it; called once per bot leg. */
  botBehaviour: (invite: SimInvite) => BotBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** How a subscriber the product dials (originate) behaves; called once per dial with its number. */
  subscriberBehaviour: (number: string) => BotBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** Every subscriber the product dialled, in order; `left` resolves when its call is gone. */
  readonly dials: SimDial[] = [];
  /** Every INVITE "sent" to the bot, in order (the latest `keepInvites`). */
  readonly invites: SimInvite[] = [];
  /**
   * For the benchmark: a bot leg was dialled, with when the product was handed its caller
   * (StasisStart, the socket's connect) and when the dial went out (performance clock).
   */
  onBotDial?: (callerHandedAt: number, dialAt: number, callId: string) => void;
  /** For the benchmark: every channel variable the product set. */
  onChannelVar?: (callId: string, name: string, value: string) => void;

  constructor(public keepInvites: number) {}

  /** An INVITE went to the bot: kept for the tests, timed for the benchmark. */
  protected inviteSent(invite: SimInvite, callerHandedAt: number | undefined, callId: string, dialAt = performance.now()): void {
    this.invites.push(invite);
    if (this.invites.length > this.keepInvites) this.invites.shift();
    if (callerHandedAt !== undefined) this.onBotDial?.(callerHandedAt, dialAt, callId);
  }
}

/** Runs `fn` after `ms` on a call's (or leg's) own timer list, so that ending the call cancels it. */
export function callTimer(timers: NodeJS.Timeout[], ms: number, fn: () => void): void {
  timers.push(setTimeout(fn, ms));
}
