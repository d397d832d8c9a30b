/**
 * Faults under load (faults.ts): what became of each call, from the SIP capture of the PBX's port,
 * the product's outcome lines and the PBX's own fallback log lines.
 *
 * Each caller (its own number) stays until the PBX hangs it up, and hangs up itself only after the
 * bound; the bot hangs up a few seconds after answering, so a bridged call ends with the PBX's BYE
 * to the caller too (route after_bot_hangup: hang up).
 */
import { noteCallerMessage, sipUserNumber, type SipMessage } from './capture.js';
import type { FallbackLine } from './fault-inputs.js';

export interface FaultPorts {
  pbx: number;
  bot: number;
  caller: number;
  /** The person behind the dialplan's own fallback (Asterisk [twin-fallback] Queue), if watched. */
  operator?: number;
}

/**
 * bridged: the bot answered the call's bot leg. fallback: the PBX hung up the caller (or sent it to
 * the operator) without the bot. stranded: the caller was neither within the bound (it hung up
 * itself then, or is still up). unanswered: the PBX never answered the caller nor let its phone
 * ring (180). A caller left ringing (Asterisk's shipped Ringing()) that the PBX refuses with an
 * error response, unanswered, is sent on like one it hung up.
 */
export type CallClass = 'bridged' | 'fallback' | 'stranded' | 'unanswered';

/** After the bot (bridged calls): released by the PBX, sent to people, left up past the bound, or cut while the bot was there. */
export type AfterBot = 'released' | 'people' | 'left' | 'cut';

export interface CallRecord {
  number: string;
  invitedAt?: number;
  answeredAt?: number;
  /** The first 180 to the caller's INVITE: its phone rings (answered later, or refused). */
  ringingAt?: number;
  /** A final error response to the caller's INVITE: the PBX refused it before any answer. */
  refusedAt?: number;
  pbxByeAt?: number;
  callerByeAt?: number;
  botInvitedAt?: number;
  botAnsweredAt?: number;
  /** The bot's own BYE (it hangs up after the hold). */
  botByeAt?: number;
  operatorAt?: number;
  cls: CallClass;
  after?: AfterBot;
  /** The bot answered its leg, but the product's outcome says the call was not bridged (bot_leg bridge: the bridge is the product's). */
  answeredNotBridged?: boolean;
  /** Outcome statuses logged by the product for this caller. */
  outcomes: string[];
  /** No outcome line, by design: the dialplan skipped the product (trunk closed) or Stasis() failed (no app). */
  noOutcome?: 'trunk-skip' | 'stasis-failed';
}

export interface FaultStats {
  calls: number;
  bridged: number;
  fallback: number;
  /** Fallback through the dialplan's people (operator), a part of `fallback`. */
  fallbackPeople: number;
  /** The bot answered but the product did not bridge it (outcome BOT_FAILED, …): in fallback or stranded. */
  answeredNotBridged: number;
  stranded: number;
  unanswered: number;
  after: Record<AfterBot, number>;
  /** Longest answer → bot INVITE or answer → fallback BYE, s (the longest ringback). */
  maxWaitS: number;
  /** Longest bot BYE → the PBX's BYE to the caller for released bridged calls, s. */
  maxAloneAfterBotS: number;
  outcomeOne: number;
  duplicated: number;
  trunkSkip: number;
  stasisFailed: number;
  missing: number;
  /** Fallback log lines of the PBX no call was matched to (should be 0). */
  unmatchedLogLines: number;
  statuses: Record<string, number>;
  /** INVITE times of the first and last call that was not bridged (epoch ms). */
  firstHitAt?: number;
  lastHitAt?: number;
  records: CallRecord[];
}

export function analyseFaultRun(
  messages: SipMessage[], ports: FaultPorts, numbers: string[], numberById: Map<string, string>,
  outcomes: Map<string, string[]>, fallbackLines: FallbackLine[],
): FaultStats {
  const records = legs(messages, ports, numbers, numberById);
  for (const r of records) {
    r.outcomes = outcomes.get(r.number) ?? [];
    classify(r);
  }
  const unmatchedLogLines = matchFallbackLines(records, fallbackLines);
  return summarise(records, unmatchedLogLines);
}

function legs(messages: SipMessage[], ports: FaultPorts, numbers: string[], numberById: Map<string, string>): CallRecord[] {
  const byNumber = new Map(numbers.map((n) => [n, { number: n, cls: 'unanswered', outcomes: [] } as CallRecord]));
  const callerLegs = new Map<string, CallRecord>();
  const botLegs = new Map<string, CallRecord>();
  const operatorLegs = new Map<string, CallRecord>();
  for (const m of messages) {
    const from = (port: number) => m.srcPort === port && m.dstPort === ports.pbx;
    const to = (port: number) => m.srcPort === ports.pbx && m.dstPort === port;
    if (from(ports.caller) && m.method === 'INVITE' && !callerLegs.has(m.callId)) {
      const r = byNumber.get(sipUserNumber(m.fromUser));
      if (r) { callerLegs.set(m.callId, r); r.invitedAt = m.t; }
      continue;
    }
    if (to(ports.bot) && m.method === 'INVITE' && !botLegs.has(m.callId)) {
      const number = (m.twinId !== undefined ? numberById.get(m.twinId) : undefined) ?? sipUserNumber(m.fromUser);
      const r = byNumber.get(number);
      if (r && r.botInvitedAt === undefined) { botLegs.set(m.callId, r); r.botInvitedAt = m.t; }
      continue;
    }
    if (ports.operator !== undefined && to(ports.operator) && m.method === 'INVITE' && !operatorLegs.has(m.callId)) {
      const r = byNumber.get(sipUserNumber(m.fromUser));
      if (r) { operatorLegs.set(m.callId, r); r.operatorAt ??= m.t; }
      continue;
    }
    const caller = callerLegs.get(m.callId);
    if (caller) {
      if (to(ports.caller) || from(ports.caller)) noteCallerMessage(caller, m, to(ports.caller));
      continue;
    }
    const bot = botLegs.get(m.callId);
    if (bot) {
      if (from(ports.bot) && m.status === 200 && m.cseqMethod === 'INVITE') bot.botAnsweredAt ??= m.t;
      else if (from(ports.bot) && m.method === 'BYE') bot.botByeAt ??= m.t;
    }
  }
  return [...byNumber.values()];
}

/** Outcome statuses of a call that was with the bot. */
const BRIDGED = new Set(['CONNECTED', 'TRANSFERRED', 'TRANSFER_FAILED']);

/** When the PBX took the caller: its answer, or the 180 that let its phone ring. */
const takenAt = (r: CallRecord) => (r.ringingAt === undefined ? r.answeredAt : Math.min(r.ringingAt, r.answeredAt ?? Infinity));
/** When the PBX ended the caller: its BYE, or the error response to a caller never answered. */
const pbxEndAt = (r: CallRecord) => r.pbxByeAt ?? (r.answeredAt === undefined ? r.refusedAt : undefined);

function classify(r: CallRecord): void {
  const pbxEnd = pbxEndAt(r);
  const pbxFirst = pbxEnd !== undefined && (r.callerByeAt === undefined || pbxEnd < r.callerByeAt);
  if (takenAt(r) === undefined) r.cls = 'unanswered';
  else if (r.botAnsweredAt !== undefined && r.outcomes.length > 0 && !r.outcomes.some((s) => BRIDGED.has(s))) {
    r.answeredNotBridged = true;
    r.cls = pbxFirst || r.operatorAt !== undefined ? 'fallback' : 'stranded';
  } else if (r.botAnsweredAt !== undefined) {
    r.cls = 'bridged';
    if (r.operatorAt !== undefined) r.after = 'people';
    else if (!pbxFirst) r.after = 'left';
    else if (r.botByeAt === undefined || r.pbxByeAt! < r.botByeAt) r.after = 'cut';
    else r.after = 'released';
  } else r.cls = pbxFirst || r.operatorAt !== undefined ? 'fallback' : 'stranded';
}

/**
 * The PBX logs each caller its dialplan sent to the fallback itself (no number in the line): matched
 * to the call without an outcome and without a bot whose BYE from the PBX follows the line soonest.
 */
function matchFallbackLines(records: CallRecord[], lines: FallbackLine[]): number {
  const candidates = records.filter((r) => r.outcomes.length === 0 && r.botInvitedAt === undefined && pbxEndAt(r) !== undefined)
    .sort((a, b) => pbxEndAt(a)! - pbxEndAt(b)!);
  let unmatched = 0;
  for (const line of [...lines].sort((a, b) => a.t - b.t)) {
    if (line.kind === 'product') continue; // the product sent it there: it has its outcome line
    const r = candidates.find((c) => c.noOutcome === undefined && pbxEndAt(c)! >= line.t - 5 && pbxEndAt(c)! <= line.t + 1000);
    if (r) r.noOutcome = line.kind;
    else unmatched += 1;
  }
  return unmatched;
}

function summarise(records: CallRecord[], unmatchedLogLines: number): FaultStats {
  const count = (f: (r: CallRecord) => boolean) => records.filter(f).length;
  const statuses: Record<string, number> = {};
  for (const r of records) for (const s of r.outcomes) statuses[s] = (statuses[s] ?? 0) + 1;
  const waits = records.flatMap((r) => {
    const taken = takenAt(r);
    if (taken === undefined) return [];
    const decided = r.cls === 'bridged' ? r.botInvitedAt : r.cls === 'fallback' ? Math.min(pbxEndAt(r) ?? Infinity, r.operatorAt ?? Infinity) : undefined;
    return decided === undefined ? [] : [(decided - taken) / 1000];
  });
  const alone = records.filter((r) => r.after === 'released').map((r) => (r.pbxByeAt! - r.botByeAt!) / 1000);
  const hits = records.filter((r) => r.cls !== 'bridged' && r.invitedAt !== undefined).map((r) => r.invitedAt!);
  return {
    calls: records.length,
    bridged: count((r) => r.cls === 'bridged'),
    fallback: count((r) => r.cls === 'fallback'),
    fallbackPeople: count((r) => r.cls === 'fallback' && r.operatorAt !== undefined),
    answeredNotBridged: count((r) => r.answeredNotBridged === true),
    stranded: count((r) => r.cls === 'stranded'),
    unanswered: count((r) => r.cls === 'unanswered'),
    after: {
      released: count((r) => r.after === 'released'), people: count((r) => r.after === 'people'),
      left: count((r) => r.after === 'left'), cut: count((r) => r.after === 'cut'),
    },
    maxWaitS: Math.max(0, ...waits),
    maxAloneAfterBotS: Math.max(0, ...alone),
    outcomeOne: count((r) => r.outcomes.length === 1),
    duplicated: count((r) => r.outcomes.length > 1),
    trunkSkip: count((r) => r.noOutcome === 'trunk-skip'),
    stasisFailed: count((r) => r.noOutcome === 'stasis-failed'),
    missing: count((r) => r.outcomes.length === 0 && r.noOutcome === undefined),
    unmatchedLogLines,
    statuses,
    firstHitAt: hits.length ? Math.min(...hits) : undefined,
    lastHitAt: hits.length ? Math.max(...hits) : undefined,
    records,
  };
}

/**
 * Seconds from `faultEnd` until calls were normal again: the first call started after it that was
 * bridged, and the start of the last streak of bridged calls (0 when it began before the fault
 * ended; undefined when the run's last call was not bridged).
 */
export function recovery(records: CallRecord[], faultEnd: number): { firstBridgedS?: number; normalS?: number } {
  const calls = records.filter((r) => r.invitedAt !== undefined).sort((a, b) => a.invitedAt! - b.invitedAt!);
  const first = calls.find((r) => r.invitedAt! >= faultEnd && r.cls === 'bridged');
  let streak: CallRecord | undefined;
  for (let i = calls.length - 1; i >= 0 && calls[i]!.cls === 'bridged'; i--) streak = calls[i];
  return {
    firstBridgedS: first ? (first.invitedAt! - faultEnd) / 1000 : undefined,
    normalS: streak ? Math.max(0, (streak.invitedAt! - faultEnd) / 1000) : undefined,
  };
}
