import type { SipTarget } from '../../twin/sip.js';
import type { AnsweredCall, BotFailure, ConnectResult, TwinStatus } from '../../core/types.js';
import type { AriCallHost } from './ari-call.js';
import { isGone, StasisCaller } from './stasis-caller.js';
import { CALLER_GONE } from '../shared.js';
import { AriError } from './ari-rest.js';

/** How the bot leg ended, as the dialplan reports it by entering Stasis again (see the [twin-bot] snippet). */
export interface DialReport {
  /** `dial`: Dial() returned with the caller still here; `hangup`: from the caller's hangup handler. */
  report: 'dial' | 'hangup';
  /** Dial()'s DIALSTATUS: ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL, ... */
  dialStatus: string;
  /** The bot leg's SIP answer, from HANGUPCAUSE(<leg>,tech), e.g. 503. */
  sipCode?: number;
  /** How long ago (at the report) the bot answered: the PBX's TWIN_ANSWERED_AT to its now. */
  answeredMs?: number;
  /** Why a LOST report was made up. */
  note?: string;
  /** The bot transferred the caller (the shipped [twin-transfers] set TWIN_TRANSFER_TARGET): to whom. */
  transferTarget?: string;
}

/**
 * Stasis(twin,twin_report=dial,status=…,sip=…,answered_at=…,now=…) arguments → a report, or
 * undefined. answered_at (set when the bot answered) and now are the PBX's epoch ms, so their
 * difference is free of clock skew between the PBX and us.
 */
export function parseDialReport(hints: Readonly<Record<string, string>>): DialReport | undefined {
  const report = hints.twin_report;
  if (report !== 'dial' && report !== 'hangup') return undefined;
  const sip = /\b(\d{3})\b/.exec(hints.sip ?? '');
  return {
    report, dialStatus: (hints.status ?? '').toUpperCase(), sipCode: sip ? Number(sip[1]) : undefined,
    answeredMs: msBetween(hints.answered_at, hints.now),
    transferTarget: hints.transfer ? hints.transfer.slice(0, 80) : undefined,
  };
}

/** to − from, for two epoch-ms strings; undefined unless both are whole numbers and to ≥ from. */
function msBetween(from: string | undefined, to: string | undefined): number | undefined {
  if (!from || !to || !/^\d{1,16}$/.test(from) || !/^\d{1,16}$/.test(to)) return undefined;
  const ms = Number(to) - Number(from);
  return ms >= 0 ? ms : undefined;
}

/**
 * A caller whose bot leg the dialplan opens (`asterisk.bot_leg: dialplan`). Once Twin has given an
 * id, one variable carries the dial string and what the pre-dial handler sets on the bot's channel
 * (the X-TWIN headers, our caller id), and the caller continues into [twin-bot]: Asterisk dials and
 * bridges with no Stasis app in the media path, so none of that call's messages go through the
 * app's serial queue. The dialplan tells us how it ended by entering Stasis again.
 */
export class DialplanCall extends StasisCaller<AriCallHost> implements AnsweredCall {
  readonly botLegId = undefined;
  readonly transferLegIds = [];
  private handedOff = false;
  private settleDial?: (report: DialReport) => void;
  /** _TWIN_BOT set during the warm-up, with TWIN_ID_MARK where the id goes. */
  private prepared?: Promise<void>;

  /** Sends _TWIN_BOT while Twin warms up: after the warm-up only the continue remains. */
  prepare(targetFor: (twinId: string) => SipTarget, answerTimeoutS: number): void {
    const value = botLegVariable(this.host.cfg.bot_endpoint, targetFor(TWIN_ID_MARK), answerTimeoutS, this.host.cfg.transfer_context);
    this.prepared = this.host.rest.setVar(this.id, '_TWIN_BOT', value).then(() => undefined)
      // Setting a variable again does no harm: once more if no answer came (ARI's connection reset).
      .catch((err: unknown) => this.againIfUnanswered(err, () => this.host.rest.setVar(this.id, '_TWIN_BOT', value)));
    this.prepared.catch(() => { /* reported by connect() */ });
  }

  async connect(target: SipTarget, answerTimeoutS: number): Promise<ConnectResult> {
    if (this.ended.aborted) return { kind: 'caller-gone' };
    const reported = new Promise<DialReport>((resolve) => { this.settleDial = resolve; });
    // The id travels as the extension ([twin-bot] sets TWIN_ID from ${EXTEN}). An id that cannot be
    // one, or a call not prepared, gets the whole variable now; the extension's name then does not matter.
    const idAsExtension = this.prepared !== undefined && EXTENSION_SAFE_ID.test(target.twinId);
    try {
      if (idAsExtension) await this.prepared;
      else {
        const value = botLegVariable(this.host.cfg.bot_endpoint, target, answerTimeoutS, this.host.cfg.transfer_context);
        await this.host.rest.setVar(this.id, '_TWIN_BOT', value)
          .catch((err: unknown) => this.againIfUnanswered(err, () => this.host.rest.setVar(this.id, '_TWIN_BOT', value)));
      }
      // A ring (ours over ARI, or the dialplan's Playtones) is stopped by [twin-bot]'s StopPlaytones():
      // one request fewer on the way to the bot.
      if (this.holdKind !== 'ring') await this.stopHold();
      this.handedOff = true;
      const where = await this.continueToBot(idAsExtension ? target.twinId : 'dial');
      if (where === 'gone') {
        this.handedOff = false;
        return { kind: 'caller-gone' };
      }
    } catch (err) {
      this.handedOff = false;
      if (this.ended.aborted || isGone(err)) return { kind: 'caller-gone' };
      this.host.log.warn({ callId: this.id, err: (err as Error).message }, 'could not hand the caller to the bot dialplan');
      return { kind: 'failed', reason: 'error', pbxReason: 'continue refused' };
    }
    return resultOf(await reported);
  }

  /**
   * POST continue into [dial_context]. Without an answer (ARI's connection reset) Asterisk may have
   * carried it out: sending the caller to its fallback then would cut the bot's call short (seen on
   * Asterisk 22.10.1, bench/real-pbx faults d). So ask where the caller is, and send the continue
   * once more only if the caller is still in our app.
   */
  private async continueToBot(extension: string): Promise<'in-bot-dialplan' | 'gone'> {
    const send = () => this.host.rest.continueInDialplan(this.id, this.host.cfg.dial_context, extension, 1);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await send();
        return 'in-bot-dialplan';
      } catch (err) {
        if (!(err instanceof AriError) || err.answered) throw err;
        const where = await this.whereAfterLostReply();
        if (where !== 'in-app') {
          if (where === 'in-bot-dialplan') this.host.log.info({ callId: this.id, err: err.message }, 'the continue\'s answer was lost, but Asterisk carried it out');
          return where;
        }
        if (attempt >= 2) throw err;
      }
    }
  }

  /** `op` again, every 200 ms while no HTTP answer comes (up to 2 s), when `err` was such a failure. */
  private async againIfUnanswered(err: unknown, op: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      if (!(err instanceof AriError) || err.answered || attempt >= LOST_REPLY_CHECKS || this.ended.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
      try {
        await op();
        return;
      } catch (next) {
        err = next;
      }
    }
  }

  /**
   * The continue got no answer (ARI's connection lost or slow): Asterisk may have carried it out.
   * Ask where the caller is, every 200 ms for up to 2 s while ARI comes back: sending the caller to
   * its fallback while it is already dialling the bot would cut the bot's call short (seen on
   * Asterisk 22.10.1 with the ARI connections reset under load, bench/real-pbx faults d).
   */
  private async whereAfterLostReply(): Promise<'in-bot-dialplan' | 'in-app' | 'gone'> {
    let sawInApp = false;
    for (let attempt = 0; attempt < LOST_REPLY_CHECKS && !this.ended.aborted; attempt += 1) {
      try {
        const channel = await this.host.rest.channel(this.id);
        if (channel === undefined) return 'gone';
        if (channel.dialplan?.context === this.host.cfg.dial_context) return 'in-bot-dialplan';
        if (sawInApp) return 'in-app'; // twice in our app, 200 ms apart: the continue was not carried out
        sawInApp = true;
      } catch { /* ARI still away: ask again */ }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return 'in-app';
  }

  /**
   * CONNECTED is the dialplan's to set (U(twin-bot-answered) on the bot's answer): by the time the
   * flow learns of it, the caller has usually hung up. Other statuses go with a fallback, as usual.
   */
  override async setStatus(status: TwinStatus): Promise<void> {
    if (status === 'CONNECTED') return;
    await super.setStatus(status);
  }

  async release(): Promise<void> {
    this.host.forget(this);
  }

  // ---- events fed by the driver ----

  /** StasisEnd/ChannelDestroyed. After the hand-off, StasisEnd only means the caller went to [twin-bot]. */
  onCallerLeft(): void {
    if (this.handedOff || this.ended.aborted) return;
    this.abort.abort(CALLER_GONE);
  }

  /** The caller is gone while in the dialplan and no report came (ARI was away): the call is over. */
  onGoneWhileHandedOff(): void {
    this.onReport({ report: 'hangup', dialStatus: 'LOST' });
  }

  /**
   * Alive but out of the bot dialplan with no report: its Stasis() found no app while ARI was away
   * (STASISSTATUS=FAILED) and the dialplan sent the caller on itself. Counted, never touched.
   */
  onLeftBotDialplan(): void {
    this.onReport({ report: 'hangup', dialStatus: 'LOST', note: 'its report was lost while ARI was away; the dialplan sent the caller on (twin-bot.conf fallback)' });
  }

  /** The dialplan entered Stasis again with how the bot leg ended. */
  onReport(report: DialReport): void {
    if (!this.handedOff) return;
    this.handedOff = false;
    if (report.report === 'hangup') this.abort.abort(CALLER_GONE);
    this.settleDial?.(report);
  }

  get isHandedOff(): boolean {
    return this.handedOff;
  }

  /** The driver never sees this call's bot leg: it lives in the dialplan. */
  onBotGone(): void {}
}

/**
 * Where the Twin id goes in a prepared assignment: the target is built with this placeholder (it
 * survives the header cleaning), then written as ${TWIN_ID}, which the pre-dial handler's EVAL fills
 * in from the extension.
 */
const TWIN_ID_MARK = '@TWIN_ID@';
/** How many times a continue without an answer is checked (200 ms apart). */
const LOST_REPLY_CHECKS = 10;
/** The pre-dial handler in twin-bot.conf is unrolled for this many assignments. */
export const MAX_ASSIGNMENTS = 11;
/** An id Asterisk can take as an extension name (at most 80 characters, matched by _[0-9a-zA-Z].). */
const EXTENSION_SAFE_ID = /^[0-9A-Za-z][0-9A-Za-z-]{1,63}$/;

/** DIALSTATUS (+ SIP code) → the call flow's result. */
function resultOf(report: DialReport): ConnectResult {
  const byCaller = report.report === 'hangup';
  if (report.dialStatus === 'LOST') {
    // Twin had given an id and Asterisk took the call on: most likely the bot answered. Say so.
    return { kind: 'answered', ended: Promise.resolve('caller'), note: report.note ?? 'ended while ARI was away: whether the bot answered is not known' };
  }
  if (report.dialStatus === 'ANSWER' && report.transferTarget !== undefined) {
    // Asterisk moved the caller to [twin-transfers] on the bot's REFER; we learn of it at the end.
    const transferred = { kind: 'transferred' as const, target: report.transferTarget, ended: Promise.resolve('caller' as const) };
    return { kind: 'answered', ended: Promise.resolve(transferred), answeredAgoMs: report.answeredMs };
  }
  if (report.dialStatus === 'ANSWER') {
    return { kind: 'answered', ended: Promise.resolve(byCaller ? 'caller' : 'bot'), answeredAgoMs: report.answeredMs };
  }
  if (byCaller || report.dialStatus === 'CANCEL') return { kind: 'caller-gone' };
  return { kind: 'failed', reason: failureFromDialStatus(report.dialStatus, report.sipCode), sipCode: report.sipCode, pbxReason: report.dialStatus };
}

function failureFromDialStatus(status: string, sipCode?: number): BotFailure {
  if (status === 'BUSY' || sipCode === 486 || sipCode === 600) return 'busy';
  if (status === 'NOANSWER') return 'no-answer';
  if (status === 'CONGESTION' || status === 'CHANUNAVAIL') return sipCode !== undefined && sipCode >= 500 ? 'unavailable' : 'error';
  return 'error';
}

/**
 * `_TWIN_BOT` = dial string ^ answer timeout ^ assignment ^ assignment …, read by [twin-bot] and,
 * inherited, by its pre-dial handler on the bot's channel, which runs Set() on each assignment.
 * Every value is ours and already cleaned (safe header characters: no $ { }); ^ is dropped, as the
 * dialplan splits on it. The handler's EVAL therefore expands nothing but our ${TWIN_ID}; Set()
 * takes everything after the first = as the value, commas included.
 */
export function botLegVariable(endpointTemplate: string, target: SipTarget, answerTimeoutS: number, transferContext: string): string {
  const safe = (value: string) => value.replace(/\^/g, '').replaceAll(TWIN_ID_MARK, '${TWIN_ID}');
  const assignments = [
    ...Object.entries(target.headers).map(([name, value]) => `PJSIP_HEADER(add,${name})=${safe(value)}`),
    // The INVITE's From is the bot channel's connected line, which Dial() copied from the caller.
    `CONNECTEDLINE(num,i)=${safe(target.callerId.number)}`,
    `CONNECTEDLINE(name,i)=${safe(target.callerId.name)}`,
    // A REFER from the bot is looked up here, never in the bot endpoint's own context (toll fraud).
    `TRANSFER_CONTEXT=${transferContext}`,
  ];
  return [endpointTemplate.replace('{uri}', target.uri), String(answerTimeoutS), ...assignments].join('^');
}
