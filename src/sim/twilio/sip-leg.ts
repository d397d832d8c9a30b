/**
 * The SIP leg Twilio opens for <Dial><Sip>: the INVITE the bot would receive, and how the bot
 * answers it. Twilio's "TwiML Voice: <Sip>" page: URI parameters after `?` whose names start with
 * X- become headers of the INVITE (values percent-decoded, RFC 3261 URI headers); others are dropped.
 */
import type { BotBehaviour, PersonBehaviour, SimInvite } from '../call-model.js';
import type { TwimlNode } from './twiml-reader.js';

export interface ParsedSipUri {
  /** The URI without its ?headers part. */
  uri: string;
  headers: [string, string][];
  /** Why Twilio would not place this leg (a header value it could not send). */
  problem?: string;
}

export function parseSipUri(text: string): ParsedSipUri {
  const trimmed = text.trim();
  const q = trimmed.indexOf('?');
  const uri = q < 0 ? trimmed : trimmed.slice(0, q);
  const headers: [string, string][] = [];
  let problem: string | undefined;
  if (/[\s<>"]/.test(uri)) problem = `SIP URI with spaces, quotes or angle brackets: ${JSON.stringify(uri)}`;
  for (const pair of q < 0 ? [] : trimmed.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    let value = '';
    try {
      value = decodeURIComponent(eq < 0 ? '' : pair.slice(eq + 1));
    } catch {
      problem = `header ${name} is not percent-encoded properly`;
      continue;
    }
    if (!/^X-[A-Za-z0-9-]+$/i.test(name)) continue; // Twilio passes X- headers only
    if (/[\u0000-\u001f\u007f]/.test(value)) problem = `header ${name} carries control characters`;
    headers.push([name, value]);
  }
  return { uri, headers, ...(problem ? { problem } : {}) };
}

/** The INVITE as text, shaped like the ones Twilio sends (Twilio's own headers first, ours after). */
export function inviteFor(sip: ParsedSipUri, callerId: string, callSid: string, accountSid: string): SimInvite {
  const from = `<sip:${callerId}@twilio.sim>`;
  const lines = [
    `INVITE ${sip.uri} SIP/2.0`,
    `From: ${from};tag=${callSid.slice(2, 10)}`,
    `To: <${sip.uri}>`,
    `Call-ID: ${callSid.toLowerCase()}@twilio.sim`,
    'CSeq: 1 INVITE',
    `X-Twilio-AccountSid: ${accountSid}`,
    `X-Twilio-CallSid: ${callSid}`,
    ...sip.headers.map(([n, v]) => `${n}: ${v}`),
    'Content-Length: 0',
  ];
  return { requestUri: sip.uri, from, headers: sip.headers, raw: `${lines.join('\r\n')}\r\n\r\n` };
}

/** How the bot leg ended, in the <Dial> action's terms. */
export interface LegEnd {
  dialCallStatus: 'completed' | 'busy' | 'no-answer' | 'failed' | 'canceled';
  sipCode?: number;
  answeredAt?: number;
  endedBy?: 'bot' | 'caller';
  /** The bot's REFER was accepted: the TwiML the referUrl answered, which Twilio runs on the caller's call next. */
  referTwiml?: TwimlNode;
}

/**
 * Runs the bot's behaviour against the caller: `callerGone` resolves when the caller hangs up.
 * `onAnswer` fires when the bot answers (the <Sip> statusCallback "answered").
 */
export async function runBotLeg(
  behaviour: BotBehaviour, ringTimeoutMs: number, callerGone: Promise<void>, onAnswer: () => void,
): Promise<LegEnd> {
  const gone = callerGone.then(() => 'caller' as const);
  const after = (ms: number) => new Promise<'time'>((r) => setTimeout(() => r('time'), ms));
  if (behaviour.kind === 'no-answer') {
    return (await Promise.race([gone, after(ringTimeoutMs)])) === 'caller' ? { dialCallStatus: 'canceled' } : { dialCallStatus: 'no-answer', sipCode: 487 };
  }
  const reply = await Promise.race([gone, after(behaviour.afterMs ?? 0)]);
  if (reply === 'caller') return { dialCallStatus: 'canceled' };
  if (behaviour.kind === 'busy') return { dialCallStatus: 'busy', sipCode: 486 };
  if (behaviour.kind === 'unavailable') return { dialCallStatus: 'failed', sipCode: 503 };
  const answeredAt = Date.now();
  onAnswer();
  const end = await Promise.race([gone, ...(behaviour.hangupAfterMs !== undefined ? [after(behaviour.hangupAfterMs)] : [])]);
  return { dialCallStatus: 'completed', sipCode: 200, answeredAt, endedBy: end === 'caller' ? 'caller' : 'bot' };
}

/** A person's phone rung by a transfer's <Dial>: its DialCallStatus (canceled when the caller hangs up first while it rings). */
export async function ringPerson(behaviour: PersonBehaviour, ringTimeoutMs: number, callerGone: Promise<void>): Promise<string> {
  const gone = callerGone.then(() => 'caller' as const);
  const after = (ms: number) => new Promise<'time'>((r) => setTimeout(() => r('time'), ms));
  if (behaviour.kind === 'no-answer') return (await Promise.race([gone, after(ringTimeoutMs)])) === 'caller' ? 'canceled' : 'no-answer';
  if ((await Promise.race([gone, after(behaviour.afterMs ?? 0)])) === 'caller') return 'canceled';
  if (behaviour.kind === 'busy') return 'busy';
  await Promise.race([gone, ...(behaviour.hangupAfterMs !== undefined ? [after(behaviour.hangupAfterMs)] : [])]);
  return 'completed';
}
