import type { Fallback, TransferDestination } from '../config/schema.js';
import type { SipTarget } from '../twin/sip.js';

export type { Fallback, TransferDestination };

/** What the product tells the dialplan, in the channel variable TWIN_STATUS (like DIALSTATUS). */
export type TwinStatus =
  | 'CONNECTED' | 'REJECTED' | 'UNAVAILABLE' | 'THROTTLED' | 'BUSY' | 'BOT_FAILED' | 'STALE' | 'ERROR'
  /** The bot handed the caller to a person (SIP REFER to an allowed target); TRANSFER_FAILED: nobody took the caller. */
  | 'TRANSFERRED' | 'TRANSFER_FAILED';

/** How a call left the product: a TWIN_STATUS, or the caller hung up before we finished. */
export type CallStatus = TwinStatus | 'ABANDONED';

export type HoldKind = 'ring' | 'moh' | 'none';

export type BotFailure = 'busy' | 'unavailable' | 'no-answer' | 'error';

/** Who ended a conversation: the caller, the bot, or (after a transfer) the person the caller was sent to. */
export type EndedBy = 'caller' | 'bot' | 'target';

/**
 * How the caller's time with the bot ended. A transfer: the bot sent a REFER to `target`, an allowed
 * name, and the caller now talks to (or rings) that destination; `ended` resolves when that call
 * ends, or at once for a driver that no longer follows the caller. A failed transfer after the bot
 * left: nobody took the caller; `callerSentOn` when the PBX's dialplan already sent them elsewhere.
 */
export type BotLegEnd =
  | 'caller' | 'bot'
  | { kind: 'transferred'; target: string; ended: Promise<EndedBy> }
  | { kind: 'transfer-failed'; target: string; reason: string; callerSentOn: boolean };

/** What a driver needs to know about the route once the bot leg is up. */
export interface ConnectOptions {
  /** Where the caller goes if the bot hangs up first (drivers that hand the bridged call to the PBX). */
  afterBot: Fallback;
  /** The route's fallback: where a caller goes when a transfer is refused or nobody answers (PBX-run transfers). */
  fallback: Fallback;
  /** Refer-To targets the bot may send the caller to; anything else is refused. */
  transfers: Readonly<Record<string, TransferDestination>>;
  transferTimeoutS: number;
}

export type ConnectResult =
  /**
   * The bot answered and is bridged with the caller; `ended` says how that ended. A driver that
   * learns of the answer only afterwards tells how long ago it was (answeredAgoMs).
   */
  | {
    kind: 'answered'; ended: Promise<BotLegEnd>; answeredAgoMs?: number; note?: string;
    /**
     * Resolves when the bot's leg is gone though `ended` waits on (a transfer whose result comes
     * later, Twilio's): Twin's trunk slot is given back then.
     */
    botLeft?: Promise<void>;
  }
  /** sipCode: Twin's own SIP answer, when one came (none: the leg failed before reaching Twin). */
  | { kind: 'failed'; reason: BotFailure; sipCode?: number; cause?: number; pbxReason?: string }
  /** The caller hung up while the bot leg was ringing; the bot leg is already gone. */
  | { kind: 'caller-gone' };

/**
 * One answered call handed to us by a PBX. A driver implements it over its protocol; the call flow
 * never sees ARI JSON or ESL headers.
 */
export interface AnsweredCall {
  /** PBX unique id (Asterisk channel id, FreeSWITCH uuid, Twilio CallSid). */
  readonly id: string;
  readonly pbx: 'asterisk' | 'freeswitch' | 'twilio';
  /** Caller number and name as the PBX has them: strangers' input, not yet cleaned. */
  readonly caller: string;
  readonly callerName: string;
  readonly dialed: string;
  readonly direction: 'inbound' | 'outbound';
  /** Route hints from the dialplan (Stasis arguments / channel variables). */
  readonly hints: Readonly<Record<string, string>>;
  /** Aborts when the caller hangs up. */
  readonly ended: AbortSignal;
  /**
   * How long the caller waited between the PBX handing the call over (Stasis() / socket) and the
   * product taking it, when the driver can tell (src/core/handover-delay.ts).
   */
  readonly handoverDelayMs?: number;
  /**
   * Keep the caller company while Twin warms up; drivers may also prepare the bot leg here. The
   * tone stops by itself after `boundMs`, so a caller is never left ringing if the product dies.
   */
  hold(kind: HoldKind, boundMs?: number): Promise<void>;
  /**
   * Optional: called while the warm-up runs, with the bot leg's target for any Twin id, so a driver
   * can send the PBX everything but the id ahead of time.
   */
  prepare?(targetFor: (twinId: string) => SipTarget, answerTimeoutS: number): void;
  /**
   * Optional: the route's connect options, told before the hold starts, so a driver can send what
   * it needs for them with its first command instead of one more before the bot's dial.
   */
  prepareRoute?(options: ConnectOptions): void;
  /** Open the leg to Twin and bridge it with the caller; resolves on answer or failure. */
  connect(target: SipTarget, answerTimeoutS: number, options: ConnectOptions): Promise<ConnectResult>;
  /** Set TWIN_STATUS on the caller's channel. */
  setStatus(status: TwinStatus): Promise<void>;
  /** Set TWIN_STATUS and hang up or continue the caller in the dialplan. */
  leave(action: Fallback, status: TwinStatus): Promise<void>;
  /** Free whatever is left (bridge, legs, timers); safe to call more than once. */
  release(): Promise<void>;
}

export interface CallOutcome {
  callId: string;
  pbx: AnsweredCall['pbx'];
  direction: AnsweredCall['direction'];
  /** Caller and dialled numbers, cleaned (digits, + * #); maskable in logs. */
  caller: string;
  dialed: string;
  /** The route entry that matched ('default', 'table[N]'). */
  route: string;
  bot: string;
  status: CallStatus;
  twinId?: string;
  /** Warm-up round trip, ms; undefined when no warm-up was sent. */
  warmupMs?: number;
  /** From the call reaching us to the bot answering (or the failure), ms. */
  setupMs: number;
  detail?: string;
  /**
   * After CONNECTED or TRANSFERRED: who hung up first; 'unknown' for a call sent to Twin by an
   * earlier run of the product that ended while no run could see it.
   */
  endedBy?: EndedBy | 'unknown';
  /** TRANSFERRED / TRANSFER_FAILED: the Refer-To name the bot asked for. */
  transferTarget?: string;
}

/** An outbound call for a PBX to place: the subscriber's phone rings; answered, it joins the call flow. */
export interface DialRequest {
  /** Our id for the call; the PBX's channel id / uuid of the subscriber leg. Letters, digits, dashes. */
  id: string;
  /** E.164 numbers. */
  to: string;
  from: string;
  ringTimeoutS: number;
  /**
   * The bot leg, for a PBX that must be given it before the subscriber answers (Twilio's inline
   * TwiML): the target with the warmed-up session's id, and that session's age limit.
   */
  botLeg?: { target: SipTarget; answerTimeoutS: number; sessionSentAt: number; maxAgeMs: number };
}

export type DialFailure = 'busy' | 'no-answer' | 'unavailable' | 'error';

export type DialResult =
  | { kind: 'answered'; call: AnsweredCall }
  | { kind: 'failed'; reason: DialFailure; cause?: number; detail: string };

/** What the outbound side needs from a PBX driver. */
export interface PbxDialer {
  readonly pbx: AnsweredCall['pbx'];
  /** Set while the PBX lacks the bot endpoint: why. No call is warmed up for it then. */
  readonly botEndpointMissing?: string;
  /** Rings the subscriber; resolves when answered (the call is ours) or when the dial has failed. */
  originate(request: DialRequest): Promise<DialResult>;
}
