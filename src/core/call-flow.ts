/**
 * The call flow, PBX-neutral: route → admit (trunk gate) → hold → warm-up → connect or fall back.
 * Every branch ends the call's stay with us: bridged until someone hangs up, continued in the
 * dialplan, or hung up. Every wait has a bound: the warm-up timeout, the bot's answer timeout.
 */
import type { Clock } from '../clock.js';
import { pbxSettings, type Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { TwinApi, WarmupCall } from '../twin/warmup.js';
import { buildSipTarget, type SipTarget } from '../twin/sip.js';
import { ownCallbackUrl } from '../callbacks/callbacks.js';
import { cleanNumber } from './caller-number.js';
import { selectRoute, type Route } from './route.js';
import type { Admission, Gate } from './trunk.js';
import type { CallJournal } from './call-journal.js';
import type { AnsweredCall, BotLegEnd, CallOutcome, CallStatus, ConnectOptions, Fallback, HoldKind, TwinStatus } from './types.js';

export interface FlowDeps {
  /** Read at each call so a reloaded config applies to the next call. */
  config: () => Config;
  twin: TwinApi;
  gate: Gate;
  clock: Clock;
  log: Logger;
  /** Told when the bot has answered and the call is bridged. */
  onConnected?: (callId: string) => void;
  /**
   * Remembers each call sent to Twin until its outcome is out, across restarts of the product
   * (src/core/call-journal.ts): told just before the bot leg is opened, and when the bot answers.
   */
  journal?: Pick<CallJournal, 'sending' | 'answered'>;
  /** Told when a caller reached us too late and goes to the fallback without a warm-up. */
  onShed?: (call: AnsweredCall, delayMs: number) => void;
}

/** How a call ended; setupMs is set when the bot answered (else it is the time until the verdict). */
type Verdict = Omit<CallOutcome, 'callId' | 'pbx' | 'direction' | 'caller' | 'dialed' | 'route' | 'bot' | 'setupMs'> & { setupMs?: number };

export async function runCallFlow(call: AnsweredCall, deps: FlowDeps): Promise<CallOutcome> {
  const startedAt = deps.clock.now();
  const route = selectRoute(deps.config().routes, { hints: call.hints, dialed: call.dialed, caller: call.caller });
  for (const warning of route.warnings) deps.log.warn({ callId: call.id }, warning);
  return settle(call, route, deps, startedAt, async () => {
    if (call.ended.aborted) return { status: 'ABANDONED', detail: `${party(call)} hung up before the call reached the product` };
    return shedIfLate(call, route, deps) ?? admitAndConnect(call, route, deps, startedAt);
  });
}

/**
 * A caller who reached us later than trunk.max_handover_delay_ms after the PBX handed it over goes
 * to the fallback at once (BUSY, no warm-up): the box is over capacity, and a queue served in order
 * would make every caller that late, then later. The trunk stays open: Twin did nothing wrong.
 */
function shedIfLate(call: AnsweredCall, route: Route, deps: FlowDeps): Promise<Verdict> | undefined {
  const boundMs = deps.config().trunk.max_handover_delay_ms;
  const delayMs = call.handoverDelayMs;
  if (boundMs === 0 || delayMs === undefined || delayMs <= boundMs) return undefined;
  deps.onShed?.(call, delayMs);
  const detail = `reached the product ${Math.round(delayMs)} ms after the PBX handed it over (bound ${boundMs} ms): over capacity`;
  return leave(call, route.fallback, 'BUSY', deps).then((status) => ({ status, detail }));
}

/** A call that arrives while the product is stopping: straight to the route's fallback. */
export async function runRefusedCall(call: AnsweredCall, deps: FlowDeps, detail: string): Promise<CallOutcome> {
  const route = selectRoute(deps.config().routes, { hints: call.hints, dialed: call.dialed, caller: call.caller });
  return settle(call, route, deps, deps.clock.now(), async () => ({ status: await leave(call, route.fallback, 'UNAVAILABLE', deps), detail }));
}

/** Runs a call's flow to its verdict; an unexpected error sends the caller to the fallback. Always releases. */
async function settle(
  call: AnsweredCall, route: Route, deps: FlowDeps, startedAt: number, flow: () => Promise<Verdict>,
): Promise<CallOutcome> {
  let verdict: Verdict;
  try {
    verdict = await flow();
  } catch (err) {
    deps.log.error({ callId: call.id, err }, 'call flow failed; sending the caller to the fallback');
    verdict = { status: await leave(call, route.fallback, 'ERROR', deps), detail: (err as Error).message };
  } finally {
    await call.release().catch((err: unknown) => deps.log.warn({ callId: call.id, err }, 'release failed'));
  }
  return {
    callId: call.id, pbx: call.pbx, direction: call.direction, caller: cleanNumber(call.caller), dialed: cleanNumber(call.dialed),
    route: route.name, bot: route.bot,
    ...verdict, setupMs: verdict.setupMs ?? deps.clock.now() - startedAt,
  };
}

/** A call's place in the trunk gate, given back once: when the bot hands the caller on, or when the flow ends. */
export class TrunkSlot {
  private released = false;
  constructor(private readonly gate: Gate, readonly admission: Admission) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.gate.release(this.admission);
  }
}

async function admitAndConnect(call: AnsweredCall, route: Route, deps: FlowDeps, startedAt: number): Promise<Verdict> {
  const gate = await deps.gate.admit();
  if (!gate.admitted) return { status: await leave(call, route.fallback, gate.status, deps) };
  const slot = new TrunkSlot(deps.gate, gate.admission);
  try {
    return await warmUpAndConnect(call, route, deps, slot, startedAt);
  } finally {
    slot.release();
  }
}

async function warmUpAndConnect(
  call: AnsweredCall, route: Route, deps: FlowDeps, slot: TrunkSlot, startedAt: number,
): Promise<Verdict> {
  const warm = await warmUpHolding(call, route, deps, slot.admission, pbxSettings(deps.config(), call.pbx).hold);
  if ('verdict' in warm) return warm.verdict;
  return connectToBot(call, route, { ...warm, startedAt }, deps, slot);
}

/**
 * The outbound call flow once the subscriber has answered: the session from the warm-up before
 * the dial is used only while younger than session.max_age_s; an older one is renewed with a
 * fresh warm-up (or the call is dropped with STALE, per outbound.on_stale_session).
 */
export async function runAnsweredOutbound(
  call: AnsweredCall, route: Route, session: WarmSession, slot: TrunkSlot, deps: FlowDeps,
): Promise<CallOutcome> {
  const startedAt = deps.clock.now();
  return settle(call, route, deps, startedAt, () => renewIfStaleAndConnect(call, route, session, slot, deps, startedAt));
}

async function renewIfStaleAndConnect(
  call: AnsweredCall, route: Route, session: WarmSession, slot: TrunkSlot, deps: FlowDeps, startedAt: number,
): Promise<Verdict> {
  const config = deps.config();
  if (deps.clock.now() - session.sentAt <= config.session.max_age_s * 1000) {
    call.prepareRoute?.(connectOptions(route));
    await call.hold('none');
    return connectToBot(call, route, { ...session, startedAt }, deps, slot);
  }
  const ageS = Math.round((deps.clock.now() - session.sentAt) / 1000);
  if (config.outbound.on_stale_session === 'drop') {
    return { status: await leave(call, route.fallback, 'STALE', deps), twinId: session.twinId, detail: `answered ${ageS} s after the warm-up` };
  }
  deps.log.info({ callId: call.id, ageS }, 'session too old when the subscriber answered; warming up again');
  const warm = await warmUpHolding(call, route, deps, slot.admission, pbxSettings(config, call.pbx).hold);
  if ('verdict' in warm) return warm.verdict;
  return connectToBot(call, route, { ...warm, startedAt }, deps, slot);
}

/** A Twin session: its id and when its warm-up was sent. */
export interface WarmSession {
  twinId: string;
  sentAt: number;
  warmupMs: number;
}

/** Holds the caller while a sync warm-up runs; a verdict when the call goes no further. */
async function warmUpHolding(
  call: AnsweredCall, route: Route, deps: FlowDeps, admission: Admission, hold: HoldKind,
): Promise<WarmSession | { verdict: Verdict }> {
  const config = deps.config();
  call.prepareRoute?.(connectOptions(route));
  // The hold outlives the warm-up's own bound by a second at most (FreeSWITCH plays it on its own).
  const holding = call.hold(hold, config.twin.warmup_timeout_ms + 1000).catch((err: unknown) => {
    deps.log.warn({ callId: call.id, err }, 'could not play ringback');
  });
  call.prepare?.((twinId) => botTarget(call, route, config, twinId), pbxSettings(config, call.pbx).bot_answer_timeout_s);
  const sentAt = deps.clock.now();
  const warm = await deps.twin.warmUp(warmupRequest(call, route, config), call.ended);
  const warmupMs = deps.clock.now() - sentAt;
  await holding;

  if (warm.kind === 'aborted' || call.ended.aborted) return { verdict: { status: 'ABANDONED', warmupMs, detail: `${party(call)} hung up during the warm-up` } };
  if (warm.kind === 'overloaded') {
    // Ours, not Twin's: no throttle (with a cluster, not for every node either).
    deps.log.warn({ callId: call.id, reason: warm.reason }, 'warm-up not done in time on our side; caller sent to the fallback, trunk left open');
    return { verdict: { status: await leave(call, route.fallback, 'BUSY', deps), warmupMs, detail: warm.reason } };
  }
  if (warm.kind === 'unavailable') {
    deps.gate.reportFailure(admission, warm.reason);
    return { verdict: { status: await leave(call, route.fallback, 'UNAVAILABLE', deps), warmupMs, detail: warm.reason } };
  }
  deps.gate.reportSuccess(admission);
  if (warm.kind === 'rejected') return { verdict: { status: await leave(call, route.fallback, 'REJECTED', deps), warmupMs } };
  return { twinId: warm.twinId, sentAt, warmupMs };
}

/** Opens the bot leg with the session's id and bridges it; waits until the conversation ends. */
async function connectToBot(
  call: AnsweredCall, route: Route, session: WarmSession & { startedAt: number }, deps: FlowDeps, slot: TrunkSlot,
): Promise<Verdict> {
  const config = deps.config();
  const { twinId, warmupMs } = session;
  if (deps.clock.now() - session.sentAt > config.session.max_age_s * 1000) {
    return { status: await leave(call, route.fallback, 'STALE', deps), warmupMs, twinId, detail: 'session too old to send' };
  }
  deps.journal?.sending({
    pbx: call.pbx, callId: call.id, direction: call.direction, caller: cleanNumber(call.caller), dialed: cleanNumber(call.dialed),
    route: route.name, bot: route.bot, twinId, warmupMs,
  });
  const result = await call.connect(botTarget(call, route, config, twinId), pbxSettings(config, call.pbx).bot_answer_timeout_s, connectOptions(route));

  if (result.kind === 'caller-gone') return { status: 'ABANDONED', warmupMs, twinId, detail: `${party(call)} hung up while the bot leg rang` };
  if (result.kind === 'failed') {
    if (twinRefused(result)) deps.gate.reportFailure(slot.admission, `bot leg failed (SIP ${result.sipCode})`);
    const why = result.sipCode ? ` (SIP ${result.sipCode})` : result.pbxReason ? ` (${result.pbxReason}, no SIP answer from Twin)` : '';
    const detail = `bot leg ${result.reason}${why}`;
    return { status: await leave(call, route.fallback, 'BOT_FAILED', deps), warmupMs, twinId, detail };
  }

  const setupMs = deps.clock.now() - (result.answeredAgoMs ?? 0) - session.startedAt;
  deps.onConnected?.(call.id);
  deps.journal?.answered(call.pbx, call.id, setupMs);
  await call.setStatus('CONNECTED').catch((err: unknown) => deps.log.warn({ callId: call.id, err }, 'could not set TWIN_STATUS'));
  deps.log.info({ callId: call.id, twinId, warmupMs, setupMs }, 'caller connected to the bot');
  void result.botLeft?.then(() => slot.release());
  const end = await result.ended;
  const connected = { warmupMs, twinId, setupMs, ...(result.note ? { detail: result.note } : {}) };
  if (typeof end !== 'string') return afterTransfer(call, route, end, connected, deps, slot);
  if (end === 'bot' && !call.ended.aborted) await leave(call, route.afterBotHangup, 'CONNECTED', deps);
  return { status: 'CONNECTED', endedBy: end, ...connected };
}

/**
 * The bot handed the caller on (SIP REFER). Twin's part is over once its leg is gone, so the trunk
 * slot is given back now, not when the caller's talk with a person ends.
 */
async function afterTransfer(
  call: AnsweredCall, route: Route, end: Exclude<BotLegEnd, string>, connected: Omit<Verdict, 'status'>, deps: FlowDeps, slot: TrunkSlot,
): Promise<Verdict> {
  slot.release();
  const transferTarget = end.target;
  if (end.kind === 'transfer-failed') {
    deps.log.warn({ callId: call.id, transferTarget, reason: end.reason }, 'transfer failed after the bot left; caller sent to the fallback');
    const status = end.callerSentOn ? 'TRANSFER_FAILED' : await leave(call, route.fallback, 'TRANSFER_FAILED', deps);
    return { ...connected, status, transferTarget, detail: end.reason };
  }
  deps.log.info({ callId: call.id, transferTarget }, 'the bot transferred the caller');
  const endedBy = await end.ended;
  if (endedBy === 'target' && !call.ended.aborted) await leave(call, { action: 'hangup', cause: 16 }, 'TRANSFERRED', deps);
  return { ...connected, status: 'TRANSFERRED', transferTarget, endedBy };
}

function connectOptions(route: Route): ConnectOptions {
  return { afterBot: route.afterBotHangup, fallback: route.fallback, transfers: route.transfers, transferTimeoutS: route.transferTimeoutS };
}

/**
 * Only Twin's own SIP side may close the trunk: a 5xx, or 408 (no answer to the INVITE at all). A leg
 * the PBX could not even build (a stranger's odd caller id, a local fault) never reached Twin.
 */
function twinRefused(result: { reason: string; sipCode?: number }): boolean {
  return result.reason === 'unavailable' && result.sipCode !== undefined && (result.sipCode >= 500 || result.sipCode === 408);
}

/** Where the bot leg goes and which headers and caller id it carries, for a Twin session id. */
export function botTarget(call: Pick<AnsweredCall, 'id' | 'caller' | 'callerName' | 'dialed'>, route: Route, config: Config, twinId: string): SipTarget {
  return buildSipTarget(config.twin.sip, {
    twin_id: twinId, call_id: call.id, external_id: route.externalId ?? '', bot: route.bot,
    caller: cleanNumber(call.caller), dialed: cleanNumber(call.dialed),
  }, route.record, { number: call.caller, name: call.callerName });
}

/** Sends the caller to the route's fallback; a caller who already hung up is left alone. */
async function leave(call: AnsweredCall, action: Fallback, status: TwinStatus, deps: FlowDeps): Promise<CallStatus> {
  if (call.ended.aborted) return status === 'CONNECTED' ? status : 'ABANDONED';
  try {
    await call.leave(action, status);
  } catch (err) {
    if (call.ended.aborted) return status === 'CONNECTED' ? status : 'ABANDONED';
    deps.log.warn({ callId: call.id, err }, 'could not send the caller to the fallback');
  }
  return status;
}

export function warmupRequest(
  call: Pick<AnsweredCall, 'id' | 'caller' | 'dialed' | 'direction'>, route: Route, config: Config,
): WarmupCall {
  return {
    callId: call.id,
    clientExternalId: route.externalId ?? call.id,
    callerId: cleanNumber(call.caller),
    number: cleanNumber(call.dialed),
    botSettingsId: route.bot,
    variables: { ...route.variables, direction: call.direction },
    callback: callbackUrls(config).map((url) => ({ url, data: { callId: call.id } })),
  };
}

/** The product's own callback URL (stored, then forwarded) first, then any Twin should call directly. */
function callbackUrls(config: Config): string[] {
  return [...(config.callbacks ? [ownCallbackUrl(config.callbacks)] : []), ...config.twin.callback_urls];
}

/**
 * Who the call's own channel is, in words: the caller who rang in, or the subscriber we dialled
 * (for an outbound call, "the caller" would read as us).
 */
export function party(call: Pick<AnsweredCall, 'direction'>): 'caller' | 'subscriber' {
  return call.direction === 'outbound' ? 'subscriber' : 'caller';
}
