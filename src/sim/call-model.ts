/**
 * What a simulated PBX's caller and bot look like to a test, the same for Asterisk and FreeSWITCH,
 * so one table of end-to-end cases runs against both.
 */

export type BotBehaviour =
  /**
   * 180, then 200 after `afterMs`; the bot sends BYE `hangupAfterMs` after answering, if given, and
   * an in-dialog REFER (Refer-To: sip:<refer.to>@pbx) `refer.afterMs` after answering, if given.
   */
  | { kind: 'answer'; afterMs?: number; hangupAfterMs?: number; refer?: { afterMs: number; to: string } }
  /** 486 Busy Here after `afterMs`. */
  | { kind: 'busy'; afterMs?: number }
  /** 503 Service Unavailable after `afterMs`. */
  | { kind: 'unavailable'; afterMs?: number }
  /** 180 and never answers: the dial's own timeout ends it (cause 19, tech_cause 480). */
  | { kind: 'no-answer' };

/** A person the bot transfers a caller to (a transfer destination's phone): answers, rings on, or is busy. */
export type PersonBehaviour =
  /** Answers after `afterMs`; hangs up `hangupAfterMs` after answering, if given. */
  | { kind: 'answer'; afterMs?: number; hangupAfterMs?: number }
  | { kind: 'no-answer' }
  | { kind: 'busy'; afterMs?: number };

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
  /** The bot's transfer reached a person, who answered: `target` is the Refer-To name, context/extension where it led. */
  | { kind: 'transferred'; target: string; context: string; extension: string; vars: Record<string, string> }
  | { kind: 'hungup-by-app'; reasonCode?: string; reason?: string; vars: Record<string, string> }
  | { kind: 'hungup-by-caller'; vars: Record<string, string> }
  /** The product was not there (Stasis() failed / socket refused): the dialplan goes on to its fallback. */
  | { kind: 'app-unavailable'; vars: Record<string, string> };

/** A caller placed by a test: watch how it leaves, or hang it up. */
export interface SimCall {
  /** The PBX's id of the caller's channel (Asterisk channel id, FreeSWITCH uuid). */
  readonly id: string;
  /** Resolves when the caller leaves our app (continued, hung up by the app or by itself). */
  readonly left: Promise<CallerResult>;
  hangup(): void;
}

/** A subscriber the product dialled (ARI originate / ESL originate). */
export interface SimDial extends SimCall {
  readonly to: string;
  readonly from: string;
  /** FreeSWITCH: the `&socket(host:port)` the answered call connects to. */
  readonly socketTarget?: string;
}

/** How the dialplan hands a caller to the product; hints become Stasis args or twin_* channel variables. */
export interface CallSpec {
  number?: string;
  name?: string;
  dialed?: string;
  hints?: Record<string, string>;
  /**
   * The PBX handed the call over this long before the product got it (a box out of CPU): Asterisk's
   * StasisStart stamped that early, FreeSWITCH's twin_handover_us=${strmicroepoch()} set that early.
   */
  handoverLagMs?: number;
}

/** A caller's way out: `left` for the test, `settle` for the PBX when the caller leaves (the first result counts). */
export function callerExit(): { left: Promise<CallerResult>; settle: (result: CallerResult) => void } {
  let settle: (result: CallerResult) => void = () => {};
  const left = new Promise<CallerResult>((resolve) => { settle = resolve; });
  return { left, settle };
}

/** Display names are quoted and stripped of what PJSIP would not put in a From header. */
export function fromHeader(caller: { name: string; number: string } | undefined): string {
  if (!caller) return '"Anonymous" <sip:anonymous@anonymous.invalid>';
  const name = caller.name.replace(/[\r\n\0]/g, '').replace(/(["\\])/g, '\\$1');
  const user = caller.number.replace(/[^A-Za-z0-9+*#._-]/g, '') || 'anonymous';
  return `"${name}" <sip:${user}@127.0.0.1>`;
}

/** Reads header lines back out of a raw INVITE the way a SIP parser would (CRLF or bare LF ends a line). */
export function parseInviteHeaders(raw: string): [string, string][] {
  const head = raw.split(/\r\n\r\n/)[0] ?? '';
  return head.split(/\r\n|\n|\r/).slice(1).map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] as [string, string];
  });
}
