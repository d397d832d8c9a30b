/**
 * Calls to the customer's Twilio numbers. Twilio's webhooks arrive on the product's own Twilio
 * port (webhook-server.ts); each incoming call becomes a TwilioCall run by the same call flow as
 * the PBXs' calls, and the Dial action / status callbacks are routed to it by CallSid.
 */
import type { ServerResponse } from 'node:http';
import type { Config, InboundTwilioConfig } from '../../config/schema.js';
import { selectRoute } from '../../core/route.js';
import type { AnsweredCall } from '../../core/types.js';
import type { Logger } from '../../log.js';
import type { JournalCall } from '../../core/call-journal.js';
import { TAKEN_OVER, type EarlierCallEnd, type EarlierCallReport } from '../earlier-calls.js';
import { FINAL_CALL_STATUSES, send, TwilioCall, type DialActionParams, type TwilioCallInfo } from './twilio-call.js';
import { actionTwiml, hangupTwiml, refuseTransferTwiml } from './twiml.js';
import { CallsApi } from './calls-api.js';
import { WebhookServer, type OutboundWebhookKind, type TwilioRequest } from './webhook-server.js';
import type { OutboundWebhookUrls } from './outbound-dialer.js';

/** How often calls of an earlier run are looked up again in the Calls API while any is left. */
const EARLIER_RECHECK_MS = 5 * 60_000;

/** CallSids already taken: a replayed webhook (same signed request again) never starts a second flow. */
const REMEMBERED_CALLS = 10_000;

export interface TwilioDriverDeps {
  log: Logger;
  /** Read at each call, so a reloaded config's routes apply to the next call. */
  config: () => Config;
  /** A new call for the call flow. */
  onCall: (call: AnsweredCall) => void;
}

export class TwilioDriver {
  readonly pbx = 'twilio' as const;
  private readonly server: WebhookServer;
  private readonly calls = new Map<string, TwilioCall>();
  private readonly seen = new Set<string>();
  private readonly api: CallsApi;
  /** Calls an earlier run sent to the bot (call journal), by CallSid: their <Dial> action or end may still come here. */
  private earlier = new Map<string, JournalCall>();
  private reportEarlier: EarlierCallReport = () => {};
  private earlierTimer?: NodeJS.Timeout;
  /** Callbacks about the calls the daemon placed (its Twilio dialer's). */
  onOutbound?: (kind: OutboundWebhookKind, params: Record<string, string>, res: ServerResponse) => void;

  constructor(cfg: InboundTwilioConfig, private readonly deps: TwilioDriverDeps) {
    this.server = new WebhookServer(cfg, deps.log, (request, res) => this.dispatch(request, res));
    this.api = new CallsApi({ apiUrl: cfg.api_url, accountSid: cfg.account_sid, authToken: cfg.auth_token });
  }

  /** Before start(): the Twilio calls earlier runs sent to the bot and never counted. */
  followEarlier(calls: readonly JournalCall[], report: EarlierCallReport): void {
    this.earlier = new Map(calls.map((call) => [call.callId, call]));
    this.reportEarlier = report;
  }

  async start(): Promise<void> {
    await this.server.listen();
    void this.settleEarlierGone();
    // A number without a status callback URL never tells of an end: look again now and then.
    if (this.earlier.size > 0) {
      this.earlierTimer = setInterval(() => void this.settleEarlierGone(), EARLIER_RECHECK_MS);
      this.earlierTimer.unref();
    }
  }

  /**
   * Earlier runs' calls that Twilio says are over (or that cannot be read) are counted now; the
   * others are followed until their <Dial> action or their end reaches this run.
   */
  private async settleEarlierGone(): Promise<void> {
    if (this.earlier.size === 0) return clearInterval(this.earlierTimer);
    await Promise.all([...this.earlier.keys()].map(async (callSid) => {
      let status: string;
      try {
        status = (await this.api.fetch(callSid)).status;
      } catch (err) {
        this.deps.log.warn({ callId: callSid, err: (err as Error).message }, 'could not read a Twilio call of an earlier run: counted as ended');
        status = 'unknown';
      }
      if (status === 'queued' || status === 'ringing' || status === 'in-progress') return;
      this.earlierEnded(callSid, { status: 'CONNECTED', endedBy: 'unknown', detail: `it ended while the product was not running; ${TAKEN_OVER}` });
    }));
  }

  async stop(): Promise<void> {
    clearInterval(this.earlierTimer);
    await this.server.close();
  }

  get port(): number {
    return this.server.port;
  }

  /** Where the daemon's outbound calls send their callbacks (as Twilio signs them). */
  get outboundUrls(): OutboundWebhookUrls {
    return { status: this.server.url('outbound-status'), dialAction: this.server.url('outbound-dial-action'), botStatus: this.server.url('outbound-bot-status') };
  }

  /**
   * Shutdown timeout: the calls still with the product are completed over the Calls API (Twilio
   * hangs up the caller and the bot's leg), and their flows end now with an outcome line, rather
   * than going on in Twilio unseen once the process has gone.
   */
  async hangupAll(): Promise<void> {
    await Promise.allSettled([...this.calls.values()].map(async (call) => {
      try {
        await this.api.update(call.id, 'completed');
      } catch (err) {
        this.deps.log.warn({ callId: call.id, err: (err as Error).message }, 'could not hang up a Twilio call at shutdown (Calls API)');
      }
      call.callEnded('completed by the product at shutdown');
    }));
  }

  get refusedRequests(): number {
    return this.server.refused;
  }

  private dispatch(request: TwilioRequest, res: ServerResponse): void {
    const { params } = request;
    switch (request.kind) {
      case 'outbound-status': case 'outbound-dial-action': case 'outbound-bot-status':
        if (this.onOutbound) return this.onOutbound(request.kind, params, res);
        return request.kind === 'outbound-dial-action' ? send(res, hangupTwiml()) : void res.writeHead(204).end();
      case 'voice': return this.incoming(params, res);
      case 'status': {
        // Acknowledged at once: Twilio wants no TwiML here.
        res.writeHead(204).end();
        if (!FINAL_CALL_STATUSES.has(params.CallStatus ?? '')) return;
        this.calls.get(params.CallSid ?? '')?.callEnded(params.CallStatus!);
        return this.earlierEnded(params.CallSid ?? '', { status: 'CONNECTED', endedBy: 'caller', detail: TAKEN_OVER });
      }
      case 'bot-status': {
        res.writeHead(204).end();
        if (params.CallStatus === 'in-progress' || params.CallStatus === 'answered') this.calls.get(request.pathCallSid!)?.botAnswered();
        return;
      }
      case 'refer': {
        const call = this.calls.get(request.pathCallSid!);
        if (call) return call.referred(params, res);
        this.deps.log.warn({ callId: request.pathCallSid }, 'REFER for a call the product does not follow: refused');
        return send(res, refuseTransferTwiml());
      }
      case 'transfer-action': {
        const call = this.calls.get(request.pathCallSid!);
        if (call) return call.transferEnded(params, res);
        return send(res, hangupTwiml());
      }
      case 'dial-action': {
        const call = this.calls.get(request.pathCallSid!);
        if (call) return call.dialEnded(params, res);
        const earlier = this.earlier.get(request.pathCallSid!);
        if (earlier) return this.earlierDialEnded(earlier, params, res);
        // A call this run does not know (it ended, or an earlier run had it): never leave Twilio without TwiML.
        this.deps.log.warn({ callId: request.pathCallSid }, 'Dial action for a call the product does not follow: hanging up');
        return send(res, hangupTwiml());
      }
    }
  }

  private incoming(params: Record<string, string>, res: ServerResponse): void {
    const info = callInfo(params);
    if (!info) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"CallSid, From and To are required"}');
      return;
    }
    if (this.seen.has(info.callSid)) {
      this.deps.log.warn({ callId: info.callSid }, 'incoming-call webhook for a call already taken (replayed?): refused');
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"error":"call already taken"}');
      return;
    }
    this.remember(info.callSid);
    const call = new TwilioCall(info, res, {
      log: this.deps.log,
      urls: (sid) => ({
        action: this.server.url('dial-action', sid), botStatus: this.server.url('bot-status', sid),
        refer: this.server.url('refer', sid), transferAction: this.server.url('transfer-action', sid),
      }),
      route: (c) => selectRoute(this.deps.config().routes, { hints: {}, dialed: c.dialed, caller: c.caller }).twilio,
      released: (c) => this.calls.delete(c.id),
    });
    this.calls.set(info.callSid, call);
    this.deps.onCall(call);
  }

  /**
   * The <Dial> action of a call an earlier run sent to the bot: counted now, and the caller goes on
   * as its route says (after_bot_hangup when the bot hung up first, the fallback when its leg failed).
   */
  private earlierDialEnded(call: JournalCall, params: DialActionParams, res: ServerResponse): void {
    const callerGone = FINAL_CALL_STATUSES.has(params.CallStatus ?? '');
    const dial = params.DialCallStatus ?? 'failed';
    let end: EarlierCallEnd;
    if (dial === 'completed') end = { status: 'CONNECTED', endedBy: callerGone ? 'caller' : 'bot', detail: TAKEN_OVER };
    else if (callerGone || dial === 'canceled') end = { status: 'ABANDONED', detail: `the caller hung up while the bot leg rang; ${TAKEN_OVER}` };
    else end = { status: 'BOT_FAILED', detail: `bot leg ${dial}; ${TAKEN_OVER}` };
    const route = selectRoute(this.deps.config().routes, { hints: {}, dialed: call.dialed, caller: call.caller }).twilio;
    send(res, callerGone ? hangupTwiml() : actionTwiml(end.status === 'CONNECTED' ? route.afterBotHangup : route.fallback));
    this.earlierEnded(call.callId, end);
  }

  private earlierEnded(callSid: string, end: EarlierCallEnd): void {
    const call = this.earlier.get(callSid);
    if (!call) return;
    this.earlier.delete(callSid);
    this.reportEarlier(call, end);
  }

  private remember(callSid: string): void {
    this.seen.add(callSid);
    if (this.seen.size > REMEMBERED_CALLS) this.seen.delete(this.seen.values().next().value!);
  }
}

const CALL_SID = /^CA[0-9a-fA-F]{32}$/;

/** The webhook's call, or undefined when a required field is missing or the CallSid is malformed. */
function callInfo(params: Record<string, string>): TwilioCallInfo | undefined {
  const { CallSid: callSid, From: from, To: to } = params;
  if (callSid === undefined || !CALL_SID.test(callSid) || from === undefined || to === undefined) return undefined;
  return { callSid, from, to, callerName: params.CallerName ?? '' };
}
