/**
 * The simulated Asterisk's objects and how they serialise, matching the recorded ARI JSON
 * (../../../../shared/fixtures/asterisk/transcripts).
 */

export type BotBehaviour =
  /** 180, then 200 after `afterMs`; the bot sends BYE `hangupAfterMs` after answering, if given. */
  | { kind: 'answer'; afterMs?: number; hangupAfterMs?: number }
  /** 486 Busy Here after `afterMs`. */
  | { kind: 'busy'; afterMs?: number }
  /** 503 Service Unavailable after `afterMs`. */
  | { kind: 'unavailable'; afterMs?: number }
  /** 180 and never answers: the dial's own timeout ends it (cause 19, tech_cause 480). */
  | { kind: 'no-answer' };

/** The INVITE the bot would receive for a dialled PJSIP leg. */
export interface SimInvite {
  requestUri: string;
  from: string;
  /** Headers added through PJSIP_HEADER(add,...), in order, values verbatim. */
  headers: [string, string][];
  /** The INVITE as text (CRLF), shaped like the recorded ones. */
  raw: string;
}

/** How a caller left our Stasis app, as the test sees it. */
export type CallerResult =
  | { kind: 'continued'; context: string; extension: string; priority: number; vars: Record<string, string> }
  | { kind: 'hungup-by-app'; reasonCode?: string; reason?: string; vars: Record<string, string> }
  | { kind: 'hungup-by-caller'; vars: Record<string, string> }
  /** Stasis() found no connected app: STASISSTATUS=FAILED, the dialplan goes on. */
  | { kind: 'stasis-failed'; vars: Record<string, string> };

export interface SimChannel {
  id: string;
  name: string;
  state: 'Down' | 'Ringing' | 'Up';
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
  /** For a bot leg: the caller channel it was dialled for. */
  callerChannelId?: string;
}

export interface SimBridge {
  id: string;
  name: string;
  channels: string[];
  /** BridgeDestroyed is delivered on DELETE only after a channel was hung up inside (fixture h1). */
  hadHangupInside: boolean;
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

/** Display names are quoted and stripped of what PJSIP would not put in a From header. */
export function fromHeader(caller: { name: string; number: string } | undefined): string {
  if (!caller) return '"Anonymous" <sip:anonymous@anonymous.invalid>';
  const name = caller.name.replace(/[\r\n\0]/g, '').replace(/(["\\])/g, '\\$1');
  const user = caller.number.replace(/[^A-Za-z0-9+*#._-]/g, '') || 'anonymous';
  return `"${name}" <sip:${user}@127.0.0.1>`;
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

/** Reads header lines back out of a raw INVITE the way a SIP parser would (CRLF or bare LF ends a line). */
export function parseInviteHeaders(raw: string): [string, string][] {
  const head = raw.split(/\r\n\r\n/)[0] ?? '';
  return head.split(/\r\n|\n|\r/).slice(1).map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] as [string, string];
  });
}
