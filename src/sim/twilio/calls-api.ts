/**
 * The stand-in's REST API for outbound calls, from Twilio's "Call resource" page: create
 * (POST Calls.json, form, basic auth), fetch (GET Calls/{Sid}.json), list by ParentCallSid, update
 * (POST Calls/{Sid}.json with Status=canceled|completed), status callbacks. A created call rings
 * the subscriber as the test scripts it; answered, its inline TwiML runs through the same reader
 * and SIP leg as an incoming call's (<Dial><Sip> → the bot's INVITE, <Pause>, <Hangup>).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readTwiml, type TwimlNode } from './twiml-reader.js';
import { inviteFor, parseSipUri, runBotLeg } from './sip-leg.js';
import type { BotBehaviour, SimInvite } from '../call-model.js';

/** What the API shares with the stand-in's number (twilio-sim.ts): account, bot, records, signed callbacks. */
export interface StandIn {
  readonly accountSid: string;
  readonly authToken: string;
  readonly msPerRingSecond: number;
  botBehaviour: (invite: SimInvite) => BotBehaviour;
  noteInvite(invite: SimInvite, callSid: string): void;
  readonly problems: string[];
  post(callSid: string, url: string, params: Record<string, string>): Promise<{ status: number; body: string }>;
  /** Hangs up an incoming call the API was asked to complete; false if there is none by that CallSid. */
  completeIncoming(sid: string): boolean;
  /** An incoming call still up, as GET Calls/{Sid}.json shows it. */
  incomingResource(sid: string): object | undefined;
}

export type CallStatus = 'queued' | 'ringing' | 'in-progress' | 'completed' | 'busy' | 'failed' | 'no-answer' | 'canceled';
const FINAL = new Set<CallStatus>(['completed', 'busy', 'failed', 'no-answer', 'canceled']);

/** The dialled subscriber: answers after `afterMs` (hangs up `hangupAfterMs` later, if given), is busy, never answers, or the call fails. */
export type CalleeBehaviour =
  | { kind: 'answer'; afterMs?: number; hangupAfterMs?: number }
  | { kind: 'busy'; afterMs?: number }
  | { kind: 'no-answer' }
  | { kind: 'failed' };

/** A Call resource, in the fields Twilio's JSON has (the ones the product or the tests read). */
export interface CallResource {
  sid: string;
  account_sid: string;
  parent_call_sid: string | null;
  to: string;
  from: string;
  status: CallStatus;
  direction: 'outbound-api' | 'outbound-dial';
  start_time: string | null;
  end_time: string | null;
}

/** A call created through the API, as a test sees it. */
export interface SimOutboundCall {
  readonly resource: CallResource;
  /** The form the product POSTed to create it. */
  readonly params: Record<string, string>;
  /** The TwiML documents' own problems (unreadable, a verb the stand-in does not run). */
  twimlProblem?: string;
  /** Resolves with the call's final status. */
  readonly ended: Promise<CallStatus>;
  /** The subscriber hangs up. */
  hangup(): void;
}

/** One API request, for tests (the Authorization header is kept only as whether it was right). */
export interface ApiRequestRecord {
  method: string;
  path: string;
  authorized: boolean;
  status: number;
}

const E164 = /^\+[1-9][0-9]{1,14}$/;

export class TwilioCallsApiSim {
  calleeBehaviour: (to: string) => CalleeBehaviour = () => ({ kind: 'answer' });
  readonly calls: SimOutboundCall[] = [];
  readonly apiRequests: ApiRequestRecord[] = [];
  private readonly resources = new Map<string, CallResource>();
  private readonly runs = new Map<string, OutboundRun>();
  private readonly server: Server = createServer((req, res) => void this.serve(req, res));
  /** Runs (and is awaited) before the list of a call's legs is answered: tests act between two reads of the product. */
  beforeLegsRead?: (parentSid: string) => Promise<void> | void;
  /** Callbacks Twilio could not deliver: none is sent, and a <Dial> action that fails ends the call. */
  losingCallbacks = false;

  constructor(private readonly sim: StandIn) {}

  /** The legs a call has dialled (its <Dial> children), as the API lists them. */
  legsOf(parentSid: string): CallResource[] {
    return [...this.resources.values()].filter((c) => c.parent_call_sid === parentSid);
  }

  /** Listens on loopback; resolves with the URL to configure as twilio.api_url. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    for (const run of this.runs.values()) run.hangup();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const authorized = req.headers.authorization === `Basic ${Buffer.from(`${this.sim.accountSid}:${this.sim.authToken}`).toString('base64')}`;
    const reply = (status: number, body: unknown) => {
      this.apiRequests.push({ method: req.method ?? '', path: url.pathname, authorized, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const search = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const form = Object.fromEntries(search);
    // A list parameter comes as the same name repeated (what Twilio's libraries send): kept space-separated.
    if (search.getAll('StatusCallbackEvent').length > 1) form.StatusCallbackEvent = search.getAll('StatusCallbackEvent').join(' ');
    // Twilio's error body: { code, message, more_info, status } ("API responses" page).
    const fail = (status: number, code: number, message: string) => reply(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
    if (!authorized) return fail(401, 20003, 'Authenticate');
    const base = `/2010-04-01/Accounts/${this.sim.accountSid}/Calls`;
    if (req.method === 'POST' && url.pathname === `${base}.json`) return this.create(form, reply, fail);
    if (req.method === 'GET' && url.pathname === `${base}.json`) {
      const parent = url.searchParams.get('ParentCallSid');
      if (parent !== null) await this.beforeLegsRead?.(parent);
      return reply(200, { calls: [...this.resources.values()].filter((c) => parent === null || c.parent_call_sid === parent) });
    }
    const sid = url.pathname.startsWith(`${base}/`) && url.pathname.endsWith('.json') ? url.pathname.slice(base.length + 1, -5) : undefined;
    const one = sid === undefined ? undefined : this.resources.get(sid);
    if (!one && sid !== undefined && req.method === 'POST' && form.Status === 'completed' && this.sim.completeIncoming(sid)) {
      return reply(200, { sid, status: 'completed', parent_call_sid: null, end_time: new Date().toUTCString(), direction: 'inbound' });
    }
    const incoming = !one && sid !== undefined && req.method === 'GET' ? this.sim.incomingResource(sid) : undefined;
    if (incoming) return reply(200, incoming);
    if (!one) return fail(404, 20404, `The requested resource ${url.pathname} was not found`);
    if (req.method === 'GET') return reply(200, one);
    if (req.method === 'POST' && (form.Status === 'canceled' || form.Status === 'completed')) {
      this.runs.get(one.sid)?.update(form.Status);
      return reply(200, one);
    }
    return fail(400, 20001, 'Status must be canceled or completed');
  }

  private create(form: Record<string, string>, reply: (s: number, b: unknown) => void, fail: (s: number, c: number, m: string) => void): void {
    if (!E164.test(form.To ?? '')) return fail(400, 21211, `Invalid 'To' Phone Number: ${form.To ?? ''}`);
    if (!E164.test(form.From ?? '')) return fail(400, 21212, `Invalid 'From' Phone Number: ${form.From ?? ''}`);
    if (form.Twiml === undefined && form.Url === undefined) return fail(400, 21205, 'Url or Twiml parameter is required');
    const timeoutS = Number(form.Timeout ?? 60);
    if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 600) return fail(400, 20001, 'Timeout must be between 1 and 600');
    const resource = this.newResource(null, form.To!, form.From!, 'outbound-api');
    const run = new OutboundRun(this.sim, this, resource, form, timeoutS);
    this.runs.set(resource.sid, run);
    this.calls.push(run.view);
    reply(201, resource);
    void run.start();
  }

  newResource(parent: string | null, to: string, from: string, direction: CallResource['direction']): CallResource {
    const resource: CallResource = {
      sid: `CA${randomBytes(16).toString('hex')}`, account_sid: this.sim.accountSid, parent_call_sid: parent,
      to, from, status: 'queued', direction, start_time: null, end_time: null,
    };
    this.resources.set(resource.sid, resource);
    return resource;
  }
}

/** One outbound call's life: ring, then (answered) its TwiML, then over. */
class OutboundRun {
  readonly view: SimOutboundCall;
  private hangUp!: () => void;
  private readonly calleeGone = new Promise<void>((resolve) => { this.hangUp = resolve; });
  private finished!: (status: CallStatus) => void;
  private cancel?: () => void;

  constructor(
    private readonly sim: StandIn, private readonly api: TwilioCallsApiSim,
    private readonly resource: CallResource, private readonly params: Record<string, string>, private readonly timeoutS: number,
  ) {
    const ended = new Promise<CallStatus>((resolve) => { this.finished = resolve; });
    this.view = { resource, params, ended, hangup: () => this.hangup() };
  }

  hangup(): void {
    this.hangUp();
    this.cancel?.();
  }

  /** The product's update: canceled ends a queued or ringing call only; completed ends it in any state. */
  update(status: 'canceled' | 'completed'): void {
    if (FINAL.has(this.resource.status)) return;
    if (status === 'canceled' && this.resource.status === 'in-progress') return;
    if (this.resource.status === 'in-progress') return this.hangup();
    this.cancel?.();
  }

  async start(): Promise<void> {
    this.set(this.resource, 'ringing');
    const behaviour = this.api.calleeBehaviour(this.resource.to);
    const answered = await this.ring(behaviour);
    if (answered !== 'answered') return this.end(answered);
    this.resource.start_time = new Date().toUTCString();
    this.set(this.resource, 'in-progress');
    if (behaviour.kind === 'answer' && behaviour.hangupAfterMs !== undefined) setTimeout(() => this.hangup(), behaviour.hangupAfterMs).unref();
    try {
      await this.runTwiml(readTwiml(this.params.Twiml ?? '<Response/>'));
    } catch (err) {
      this.view.twimlProblem = (err as Error).message;
    }
    this.end('completed');
  }

  /** The subscriber's phone: answered, busy, failed, no answer within Timeout, or canceled by an update. */
  private ring(behaviour: CalleeBehaviour): Promise<'answered' | CallStatus> {
    return new Promise((settle) => {
      const timers: NodeJS.Timeout[] = [];
      const after = (ms: number, outcome: 'answered' | CallStatus) => timers.push(setTimeout(() => done(outcome), ms));
      const done = (outcome: 'answered' | CallStatus) => {
        timers.forEach(clearTimeout);
        this.cancel = undefined;
        settle(outcome);
      };
      this.cancel = () => done('canceled');
      after(this.timeoutS * this.sim.msPerRingSecond, 'no-answer');
      if (behaviour.kind === 'answer') after(behaviour.afterMs ?? 0, 'answered');
      else if (behaviour.kind === 'busy') after(behaviour.afterMs ?? 0, 'busy');
      else if (behaviour.kind === 'failed') after(0, 'failed');
    });
  }

  private async runTwiml(doc: TwimlNode): Promise<void> {
    for (const verb of doc.children) {
      if (this.isGone()) return;
      switch (verb.name) {
        case 'Hangup': return;
        case 'Pause': await this.pause(Number(verb.attrs.length ?? 1)); break;
        case 'Dial': {
          const action = await this.dial(verb);
          // With an action URL, Twilio goes on with the TwiML it answers, not with the next verb.
          if (action) return this.runTwiml(action);
          break;
        }
        default: throw new Error(`the stand-in does not run <${verb.name}> in an outbound call`);
      }
    }
  }

  private pause(lengthS: number): Promise<void> {
    return Promise.race([this.calleeGone, new Promise<void>((r) => setTimeout(r, lengthS * this.sim.msPerRingSecond))]);
  }

  /**
   * <Dial><Sip>: a child call (ParentCallSid = this call) to the bot, which the tests script as for
   * incoming calls; the <Sip> statusCallback (answered) and the <Dial> action (DialCallStatus, and
   * the call's own CallStatus: completed once the subscriber has hung up, and then the TwiML the
   * action answers is not run) as for incoming calls. Resolves with the action's TwiML to run.
   */
  private async dial(verb: TwimlNode): Promise<TwimlNode | undefined> {
    const sip = verb.children.find((n) => n.name === 'Sip');
    if (!sip) throw new Error('the stand-in dials only <Sip> from an outbound call');
    const parsed = parseSipUri(sip.text);
    if (parsed.problem) {
      this.sim.problems.push(parsed.problem);
      return undefined;
    }
    const child = this.api.newResource(this.resource.sid, parsed.uri, verb.attrs.callerId ?? this.resource.from, 'outbound-dial');
    this.set(child, 'ringing');
    const invite = inviteFor(parsed, verb.attrs.callerId ?? this.resource.from, child.sid, this.sim.accountSid);
    this.sim.noteInvite(invite, child.sid);
    const timeoutMs = Number(verb.attrs.timeout ?? 30) * this.sim.msPerRingSecond;
    const leg = await runBotLeg(this.sim.botBehaviour(invite), timeoutMs, this.calleeGone, () => {
      child.start_time = new Date().toUTCString();
      this.set(child, 'in-progress');
      const events = (sip.attrs.statusCallbackEvent ?? '').split(/\s+/);
      if (sip.attrs.statusCallback && events.includes('answered')) {
        void this.callback(child.sid, sip.attrs.statusCallback, { ...this.callbackParams(child), CallStatus: 'in-progress', ParentCallSid: this.resource.sid });
      }
    });
    // The subscriber's hang-up ends both calls at once: the parent first, as Twilio sees it.
    if (leg.endedBy === 'caller' || leg.dialCallStatus === 'canceled') this.end('completed');
    child.end_time = new Date().toUTCString();
    this.set(child, leg.dialCallStatus);
    if (!verb.attrs.action) return undefined;
    const res = await this.callback(this.resource.sid, verb.attrs.action, {
      ...this.callbackParams(this.resource), CallStatus: this.isGone() ? 'completed' : 'in-progress',
      DialCallStatus: leg.dialCallStatus, DialCallSid: child.sid,
      ...(leg.sipCode !== undefined ? { DialSipResponseCode: String(leg.sipCode) } : {}),
    });
    if (this.isGone() || res.status !== 200) return undefined;
    return readTwiml(res.body);
  }

  /** A signed callback to the product, or, while the API is losing them, a failed one (HTTP 502, as a proxy would say). */
  private callback(sid: string, url: string, params: Record<string, string>): Promise<{ status: number; body: string }> {
    if (this.api.losingCallbacks) return Promise.resolve({ status: 502, body: '' });
    return this.sim.post(sid, url, params);
  }

  private callbackParams(call: CallResource): Record<string, string> {
    return { AccountSid: this.sim.accountSid, ApiVersion: '2010-04-01', CallSid: call.sid, From: call.from, To: call.to, Direction: call.direction };
  }

  private isGone(): boolean {
    return FINAL.has(this.resource.status);
  }

  private end(status: CallStatus): void {
    if (FINAL.has(this.resource.status)) return;
    this.resource.end_time = new Date().toUTCString();
    this.set(this.resource, status);
    this.hangUp();
    this.finished(status);
  }

  /** A new status, and the status callback when the product asked for this event (default: completed only). */
  private set(call: CallResource, status: CallStatus): void {
    call.status = status;
    const url = call === this.resource ? this.params.StatusCallback : undefined;
    if (!url) return;
    const events = (this.params.StatusCallbackEvent ?? 'completed').split(/[\s,]+/);
    const event = status === 'in-progress' ? 'answered' : FINAL.has(status) ? 'completed' : status;
    if (!events.includes(event)) return;
    void this.callback(call.sid, url, { ...this.callbackParams(call), CallStatus: status });
  }
}
