/**
 * The simulated Asterisk's options, its objects and how they serialise, matching the recorded ARI JSON
 * (../../../../shared/fixtures/asterisk/transcripts).
 */

import type { SimInvite } from '../call-model.js';

export type { BotBehaviour, CallerResult, SimInvite } from '../call-model.js';
export { fromHeader, parseInviteHeaders } from '../call-model.js';

export interface SimChannel {
  id: string;
  name: string;
  /** Ring: an incoming caller not answered yet (the shipped Ringing(): its phone rings). */
  state: 'Down' | 'Ring' | 'Ringing' | 'Up';
  protocolId: string;
  caller: { name: string; number: string };
  dialplan: { context: string; exten: string; priority: number; app_name: string; app_data: string };
  creationtime: string;
  role: 'caller' | 'created';
  /** Stasis app the channel is in, if any. */
  app?: string;
  appArgs: string[];
  endpoint?: string;
  vars: Map<string, string>;
  bridgeId?: string;
  ringing: boolean;
  moh: boolean;
  dialled: boolean;
  invite?: SimInvite;
  timers: NodeJS.Timeout[];
  /** Performance timestamps for the benchmark. */
  stasisStartAt?: number;
  dialAt?: number;
  /** When the dialplan answered the caller (performance clock): ANSWEREDTIME_MS counts from here. */
  answeredAt?: number;
  /** Originated by POST /channels into an app: in Stasis only once answered (fixture b1). */
  awaitingAnswer?: boolean;
  /** Created by POST /channels/create and not yet in Stasis: Asterisk replies before the channel gets there. */
  enteringStasis?: boolean;
  /** For an originated subscriber leg: the number dialled. */
  subscriber?: string;
  /** POST /channels/create?originator=: the channel that requested this one. */
  originatorId?: string;
  /** For a bot leg: the caller channel it was dialled for. */
  callerChannelId?: string;
  /** A caller the app continued into the bot dialplan ([twin-bot]): Dial() to the bot is running. */
  botDial?: { app: string; startedAt: number; answeredAt?: number; transferredTo?: string };
  /** A bot leg that sent a REFER: what it asked for and the NOTIFY sipfrag codes it got back. */
  refer?: SimRefer;
}

/** A bot's REFER as the simulated Asterisk handled it (for tests: what the bot heard). */
export interface SimRefer {
  /** The Refer-To user. */
  to: string;
  /** How Asterisk took it: ari-only (ChannelTransfer to the app), core (its own blind transfer), or refused (NOTIFY 404: no such extension). */
  handling: 'ari' | 'core' | 'refused';
  /** NOTIFY sipfrag status codes sent to the bot, in order (100, 200, 503, 603). */
  notifies: number[];
  /** The caller it was about. */
  callerId?: string;
}

export interface SimBridge {
  id: string;
  name: string;
  channels: string[];
  /** BridgeDestroyed is delivered on DELETE only after a channel was hung up inside (fixture h1). */
  hadHangupInside: boolean;
  /** Music on hold played to the bridge (POST /bridges/{id}/moh). */
  moh?: boolean;
}

export interface AriSimOptions {
  username?: string;
  password?: string;
  /** PJSIP endpoints that exist (default twin and carrier); others fail allocation (500) and GET /endpoints answers 404. */
  endpoints?: readonly string[];
  /** Where a plain PJSIP/<endpoint> leg goes (the AOR contact). */
  contact?: string;
  /**
   * How long after its REST reply a created channel enters Stasis (StasisStart), ms; 0 or less:
   * before the reply. Until then `dial` answers 409 and `addChannel` 422 "Channel not in Stasis
   * application" (recording create-dial-race). Default: drawn from that recording.
   */
  stasisEntryDelayMs?: () => number;
  /** The context of the shipped bot dialplan (asterisk.dial_context; default twin-bot). */
  botDialContext?: string;
  /** Whether that Dial() has the `g` option; default: read from the shipped twin-bot.conf. */
  botDialGoesOn?: boolean;
  /**
   * Extensions of the contexts Asterisk's own transfer looks a Refer-To user up in (TRANSFER_CONTEXT,
   * else the bot endpoint's context from-twin). Default: the shipped [twin-transfers] example
   * (operator) and the recordings' from-twin (200; operator, as a lab would have it).
   */
  transferExtensions?: Record<string, string[]>;
  /** How long the dialplan behind a core transfer rings a person who does not answer, s (default 20). */
  transferRingTimeoutS?: number;
}

export const ASTERISK_ID = '02:fc:00:00:00:01';

/** Asterisk's timestamp format: millisecond precision and a +0000 offset. */
export function asteriskTime(date = new Date()): string {
  return date.toISOString().replace('Z', '+0000');
}

export function channelJson(ch: SimChannel): Record<string, unknown> {
  return {
    id: ch.id,
    name: ch.name,
    state: ch.state,
    protocol_id: ch.protocolId,
    caller: ch.caller,
    connected: { name: '', number: '' },
    accountcode: '',
    dialplan: ch.dialplan,
    creationtime: ch.creationtime,
    language: 'en',
  };
}

export function bridgeJson(b: SimBridge): Record<string, unknown> {
  return {
    id: b.id,
    technology: 'simple_bridge',
    bridge_type: 'mixing',
    bridge_class: 'stasis',
    creator: 'Stasis',
    name: b.name,
    channels: [...b.channels],
    creationtime: asteriskTime(),
    video_mode: 'talker',
  };
}

export function buildInvite(requestUri: string, from: string, headers: [string, string][], callId: string): SimInvite {
  const lines = [
    `INVITE ${requestUri} SIP/2.0`,
    'Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj' + callId.slice(0, 12),
    `From: ${from};tag=${callId.slice(-12)}`,
    `To: <${requestUri.replace(/:\d+$/, '')}>`,
    'Contact: <sip:asterisk@127.0.0.1:5060>',
    `Call-ID: ${callId}`,
    'CSeq: 8754 INVITE',
    'Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, INFO, REFER',
    'Supported: 100rel, timer, replaces, norefersub, histinfo',
    'Session-Expires: 1800',
    'Min-SE: 90',
    ...headers.map(([n, v]) => `${n}: ${v}`),
    'Max-Forwards: 70',
    'User-Agent: Asterisk-twin-sim',
    'Content-Type: application/sdp',
    'Content-Length:     0',
    '',
    '',
  ];
  return { requestUri, from, headers, raw: lines.join('\r\n') };
}

/** In Stasis: entered the app and not still on its way in (created) or ringing (originated). */
export function inStasis(ch: SimChannel): boolean {
  return ch.app !== undefined && !ch.awaitingAnswer && !ch.enteringStasis;
}

/** A caller left ringing (Ring) is answered: its phone stops ringing (ARI answer, or Dial() on the bot's answer). */
export function answer(ch: SimChannel): void {
  if (ch.state === 'Up') return;
  ch.state = 'Up';
  ch.answeredAt = performance.now();
  ch.ringing = false;
}
