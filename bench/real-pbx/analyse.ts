/**
 * Per call, from the capture: t0 = the PBX's first 180 Ringing or 200 OK to the caller's INVITE
 * (a dialplan that answers at once sends the 200; one that lets the caller's phone ring sends the
 * 180 and answers when the bot does), t1 = the bot leg's INVITE. Calls are told apart by the
 * caller's number (From user, unique per call): the bot INVITE carries X-TWIN-CallId, which the Twin stand-in maps back to the number it warmed up; when there is
 * no known id (static headers), the bot INVITE's From user (the caller's number, passed through).
 */
import { noteCallerMessage, sipUserNumber, type SipMessage, type UdpPacket } from './capture.js';

export interface Ports {
  pbx: number;
  bot: number;
  caller: number;
}

/** Why a call was not bridged, for the human-readable line. */
export interface LostReasons {
  noAnswer: number;
  /**
   * No bot INVITE, and the PBX hung the caller up (the bench's fallback: cause 34), or refused it
   * with an error response before any answer (a caller left ringing): sent on, not stranded.
   */
  fallback: number;
  noBotInvite: number;
  botNotAnswered: number;
  pbxHungUpCaller: number;
}

export interface CallStats {
  calls: number;
  bridged: number;
  lost: number;
  latenciesMs: number[];
  reasons: LostReasons;
  /**
   * Bridged calls whose caller heard ringback before the bot's INVITE: RTP from the PBX (≥ 100 ms
   * of it) after the answer, or a 180 Ringing (the caller's own phone plays the ringback).
   */
  ringbackHeard: number;
}

interface CallerLeg {
  number: string;
  answeredAt?: number;
  /** The first 180 Ringing to the caller's INVITE. */
  ringingAt?: number;
  /** A final error response to the INVITE: the PBX refused a caller it never answered (its fallback hung up). */
  refusedAt?: number;
  /** The PBX's RTP port for this caller (the 200 OK's SDP). */
  pbxAudioPort?: number;
  callerByeAt?: number;
  pbxByeAt?: number;
}

interface BotLeg {
  invitedAt: number;
  number: string;
  answered: boolean;
}

/** delayByNumber: each call's warm-up hold by the stand-in, taken off its latency (answer→bot INVITE minus the warm-up). */
/** RTP packets to the callers' media port: their times by the PBX's source port. */
export type RtpArrivals = Map<number, number[]>;

export function rtpArrivals(packets: UdpPacket[], callerMediaPort: number): RtpArrivals {
  const byPort: RtpArrivals = new Map();
  for (const p of packets) {
    if (p.dstPort !== callerMediaPort || (p.payload[0]! & 0xc0) !== 0x80) continue; // RTP version 2
    let times = byPort.get(p.srcPort);
    if (!times) byPort.set(p.srcPort, (times = []));
    times.push(p.t);
  }
  return byPort;
}

/** 5 packets of 20 ms from the caller's PBX port while waiting: a tone, not a stray packet. */
function heardRingback(rtp: RtpArrivals | undefined, leg: CallerLeg, until: number): boolean {
  if (leg.ringingAt !== undefined && leg.ringingAt < until) return true;
  if (!rtp) return false;
  const times = leg.pbxAudioPort === undefined ? undefined : rtp.get(leg.pbxAudioPort);
  return (times?.filter((t) => t > leg.answeredAt! && t < until).length ?? 0) >= 5;
}

export function analyse(
  messages: SipMessage[], ports: Ports, numbers: string[], numberById: Map<string, string>, delayByNumber = new Map<string, number>(),
  rtp?: RtpArrivals,
): CallStats {
  const wanted = new Set(numbers);
  const callers = callerLegs(messages, ports, wanted);
  const bots = botLegs(messages, ports, numberById);
  const reasons: LostReasons = { noAnswer: 0, fallback: 0, noBotInvite: 0, botNotAnswered: 0, pbxHungUpCaller: 0 };
  const latenciesMs: number[] = [];
  let ringbackHeard = 0;
  for (const number of numbers) {
    const leg = callers.get(number);
    const bot = bots.get(number);
    if (leg?.answeredAt === undefined && leg?.refusedAt !== undefined && !bot) reasons.fallback += 1;
    else if (leg?.answeredAt === undefined) reasons.noAnswer += 1;
    else if (!bot && pbxHungUpFirst(leg)) reasons.fallback += 1;
    else if (!bot) reasons.noBotInvite += 1;
    else if (!bot.answered) reasons.botNotAnswered += 1;
    else if (pbxHungUpFirst(leg)) reasons.pbxHungUpCaller += 1;
    else {
      latenciesMs.push(bot.invitedAt - Math.min(leg.answeredAt, leg.ringingAt ?? Infinity) - (delayByNumber.get(number) ?? 0));
      if (heardRingback(rtp, leg, bot.invitedAt)) ringbackHeard += 1;
    }
  }
  const bridged = latenciesMs.length;
  return { calls: numbers.length, bridged, lost: numbers.length - bridged, latenciesMs, reasons, ringbackHeard };
}

function pbxHungUpFirst(leg: CallerLeg): boolean {
  return leg.pbxByeAt !== undefined && (leg.callerByeAt === undefined || leg.pbxByeAt < leg.callerByeAt);
}

/** Caller legs by number: first 180 and 200 OK to the INVITE, and who sent the first BYE. */
function callerLegs(messages: SipMessage[], ports: Ports, wanted: Set<string>): Map<string, CallerLeg> {
  const byCallId = new Map<string, CallerLeg>();
  for (const m of messages) {
    const toPbx = m.srcPort === ports.caller && m.dstPort === ports.pbx;
    const toCaller = m.srcPort === ports.pbx && m.dstPort === ports.caller;
    if (toPbx && m.method === 'INVITE' && !byCallId.has(m.callId)) {
      const number = sipUserNumber(m.fromUser);
      if (wanted.has(number)) byCallId.set(m.callId, { number });
      continue;
    }
    const leg = byCallId.get(m.callId);
    if (!leg) continue;
    if (!toPbx && !toCaller) continue;
    if (toCaller && m.status === 200 && m.cseqMethod === 'INVITE') leg.pbxAudioPort ??= m.audioPort;
    noteCallerMessage(leg, m, toCaller);
  }
  return new Map([...byCallId.values()].map((leg) => [leg.number, leg]));
}

/** Bot legs by the caller's number: first INVITE (retransmissions ignored) and whether the bot said 200. */
function botLegs(messages: SipMessage[], ports: Ports, numberById: Map<string, string>): Map<string, BotLeg> {
  const byCallId = new Map<string, BotLeg>();
  for (const m of messages) {
    if (m.srcPort === ports.pbx && m.dstPort === ports.bot && m.method === 'INVITE' && !byCallId.has(m.callId)) {
      const number = (m.twinId !== undefined ? numberById.get(m.twinId) : undefined) ?? sipUserNumber(m.fromUser);
      byCallId.set(m.callId, { invitedAt: m.t, number, answered: false });
    } else if (m.srcPort === ports.bot && m.status === 200 && m.cseqMethod === 'INVITE') {
      const leg = byCallId.get(m.callId);
      if (leg) leg.answered = true;
    }
  }
  const byNumber = new Map<string, BotLeg>();
  for (const leg of byCallId.values()) if (!byNumber.has(leg.number)) byNumber.set(leg.number, leg);
  return byNumber;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
