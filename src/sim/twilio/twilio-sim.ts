/**
 * A Twilio stand-in for an incoming call to a Twilio number, written from Twilio's docs (see
 * README.md beside this file): it signs and POSTs the number's webhook, runs the TwiML it gets back
 * (<Dial><Sip> towards the bot, <Dial> a person, <Redirect>, <Hangup>, <Reject>), POSTs the <Dial>
 * action and the status callbacks, and ignores TwiML for a call whose caller is already gone.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { BotBehaviour, PersonBehaviour, SimInvite } from '../call-model.js';
import { readTwiml, type TwimlNode } from './twiml-reader.js';
import { inviteFor, parseSipUri, ringPerson, runBotLeg, type LegEnd } from './sip-leg.js';
import { twilioSignature } from './signer.js';
import { SimulatedPbx } from '../simulated-pbx.js';

/** How a call left Twilio's hands, as a test sees it. */
export type TwilioCallEnd =
  | { kind: 'hangup' }
  | { kind: 'rejected'; reason: string }
  /** The TwiML sent the caller to a person: a number or SIP URI. */
  | { kind: 'dialed-person'; target: string }
  | { kind: 'redirected'; url: string }
  | { kind: 'caller-hung-up'; during: 'webhook' | 'bot' | 'other' }
  /** The webhook answered something other than TwiML with 200: Twilio would play its error message. */
  | { kind: 'webhook-failed'; status: number; body: string };

export interface SimTwilioCall {
  readonly sid: string;
  readonly left: Promise<TwilioCallEnd>;
  /** Whether the bot answered this call's <Sip> leg. */
  botAnswered: boolean;
  hangup(): void;
}

/** One HTTP request the stand-in made to the product, for tests to read. */
export interface WebhookRecord {
  callSid: string;
  url: string;
  status: number;
  body: string;
  /** From sending the request to the whole answer read, ms. */
  ms: number;
}

export interface TwilioSimOptions {
  accountSid?: string;
  authToken?: string;
  /** Real milliseconds per second of a <Dial timeout> (tests shrink ringing). */
  msPerRingSecond?: number;
  /** Keep the last N bot INVITEs (the benchmark makes many). */
  keepInvites?: number;
}

/** Twilio's side of a number and its API, on the simulators' shared base (bot behaviour, INVITEs kept). */
export class TwilioSimulator extends SimulatedPbx {
  readonly accountSid: string;
  readonly authToken: string;
  /** The number's "A call comes in" URL and "Call status changes" URL, as set in the console. */
  voiceUrl = '';
  statusUrl = '';
  /** Where a public URL's origin really is: the reverse proxy in front of the product. */
  private proxy?: { publicOrigin: string; localOrigin: string };
  /** The person a transfer's <Dial> rings (its number or SIP URI). */
  personBehaviour: (target: string) => PersonBehaviour = () => ({ kind: 'answer' });
  /** Each REFER the bot sent and what came of it: accepted (the referUrl answered <Dial>) or refused, and why. */
  readonly refers: { to: string; outcome: 'accepted' | 'refused'; why?: string }[] = [];
  /** Each transfer's <Dial> to a person: its target and DialCallStatus. */
  readonly transfers: { target: string; status: string }[] = [];
  readonly requests: WebhookRecord[] = [];
  /** Legs Twilio would not have placed (bad X- header values): must stay empty. */
  readonly problems: string[] = [];
  /** Keep the last N request records only (the benchmark makes many). */
  keepRequests = Infinity;
  /** Told of every request made (the benchmark times the webhooks). */
  onRequest?: (request: WebhookRecord) => void;
  /** Incoming calls not over yet, by CallSid: the Calls API can complete them (POST Status=completed). */
  private readonly liveCalls = new Map<string, SimTwilioCall>();
  /** Incoming calls over (the last 10 000), which the Calls API still shows as completed. */
  private readonly endedCalls = new Set<string>();

  constructor(private readonly options: TwilioSimOptions = {}) {
    super(options.keepInvites ?? Infinity);
    this.botBehaviour = () => ({ kind: 'answer' });
    this.accountSid = options.accountSid ?? `AC${randomBytes(16).toString('hex')}`;
    this.authToken = options.authToken ?? randomBytes(16).toString('hex');
  }

  /** A bot INVITE the stand-in "sent" (the <Sip> leg of a <Dial>), kept on the shared base. */
  noteInvite(invite: SimInvite, callSid: string): void {
    this.inviteSent(invite, undefined, callSid);
  }

  /** Points the number at the product: webhooks for `publicBase` are delivered to `localOrigin`. */
  configureNumber(publicBase: string, localOrigin: string): void {
    const base = publicBase.replace(/\/+$/, '');
    this.voiceUrl = `${base}/voice`;
    this.statusUrl = `${base}/status`;
    this.proxy = { publicOrigin: new URL(publicBase).origin, localOrigin };
  }

  placeCall(spec: { from?: string; to?: string; callerName?: string } = {}): SimTwilioCall {
    const sid = `CA${randomBytes(16).toString('hex')}`;
    let hangUp!: () => void;
    const callerGone = new Promise<void>((resolve) => { hangUp = resolve; });
    const state = { gone: false };
    const call: SimTwilioCall = {
      sid, botAnswered: false,
      left: Promise.resolve({ kind: 'hangup' }),
      hangup: () => {
        if (state.gone) return;
        state.gone = true;
        hangUp();
        void this.post(sid, this.statusUrl, { ...this.callParams(sid, spec), CallStatus: 'completed' });
      },
    };
    const run = new CallRun(this, call, spec, callerGone, state);
    (call as { left: Promise<TwilioCallEnd> }).left = run.start();
    this.liveCalls.set(sid, call);
    void call.left.finally(() => {
      this.liveCalls.delete(sid);
      this.endedCalls.add(sid);
      if (this.endedCalls.size > 10_000) this.endedCalls.delete(this.endedCalls.values().next().value!);
    });
    return call;
  }

  /**
   * The Calls API's update of an incoming call ("Update a Call resource": Status=completed hangs up
   * a call in progress): Twilio ends it as if the caller had hung up. False for an unknown CallSid.
   */
  /** An incoming call as the Calls API shows it (GET Calls/{Sid}.json): in progress, or completed once over; undefined if unknown. */
  incomingResource(sid: string): { sid: string; status: 'in-progress' | 'completed'; parent_call_sid: null; direction: 'inbound' } | undefined {
    if (this.liveCalls.has(sid)) return { sid, status: 'in-progress', parent_call_sid: null, direction: 'inbound' };
    return this.endedCalls.has(sid) ? { sid, status: 'completed', parent_call_sid: null, direction: 'inbound' } : undefined;
  }

  completeIncoming(sid: string): boolean {
    const call = this.liveCalls.get(sid);
    call?.hangup();
    return call !== undefined;
  }

  /** The base parameters of every request about a call (Twilio's "TwiML Voice requests" page). */
  callParams(sid: string, spec: { from?: string; to?: string; callerName?: string }): Record<string, string> {
    const from = spec.from ?? '+15550100';
    const to = spec.to ?? '+15550199';
    return {
      AccountSid: this.accountSid, ApiVersion: '2010-04-01', CallSid: sid, Direction: 'inbound',
      From: from, Caller: from, To: to, Called: to, ...(spec.callerName !== undefined ? { CallerName: spec.callerName } : {}),
    };
  }

  /** A signed form POST, signed over the public URL, delivered through the proxy. */
  async post(callSid: string, url: string, params: Record<string, string>, signWith = this.authToken): Promise<{ status: number; body: string }> {
    const signature = twilioSignature(signWith, url, params);
    return this.send(callSid, url, new URLSearchParams(params).toString(), { 'x-twilio-signature': signature });
  }

  /** Sends a request as given (tests forge, drop or replay signatures with it). */
  async send(callSid: string, url: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    const local = this.proxy && url.startsWith(this.proxy.publicOrigin) ? this.proxy.localOrigin + url.slice(this.proxy.publicOrigin.length) : url;
    const sentAt = performance.now();
    try {
      const res = await fetch(local, {
        method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        // Twilio's webhook timeout: 15 s, then it gives up on the request.
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      this.record({ callSid, url, status: res.status, body: text, ms: performance.now() - sentAt });
      return { status: res.status, body: text };
    } catch (err) {
      this.record({ callSid, url, status: 0, body: (err as Error).message, ms: performance.now() - sentAt });
      return { status: 0, body: (err as Error).message };
    }
  }

  private record(request: WebhookRecord): void {
    this.requests.push(request);
    if (this.requests.length > this.keepRequests) this.requests.shift();
    this.onRequest?.(request);
  }

  get msPerRingSecond(): number {
    return this.options.msPerRingSecond ?? 1000;
  }
}

/** One call's life in the stand-in: webhook, then the TwiML documents it is given, one after another. */
class CallRun {
  constructor(
    private readonly sim: TwilioSimulator,
    private readonly call: SimTwilioCall,
    private readonly spec: { from?: string; to?: string; callerName?: string },
    private readonly callerGone: Promise<void>,
    private readonly state: { gone: boolean },
  ) {}

  async start(): Promise<TwilioCallEnd> {
    const end = await this.fetchAndRun(this.sim.voiceUrl, { CallStatus: 'ringing' }, 'webhook');
    if (!this.state.gone) {
      this.state.gone = true;
      void this.sim.post(this.call.sid, this.sim.statusUrl, { ...this.params(), CallStatus: 'completed' });
    }
    return end;
  }

  private params(): Record<string, string> {
    return this.sim.callParams(this.call.sid, this.spec);
  }

  private async fetchAndRun(url: string, extra: Record<string, string>, during: 'webhook' | 'other'): Promise<TwilioCallEnd> {
    const res = await this.sim.post(this.call.sid, url, { ...this.params(), ...extra });
    // A caller gone while Twilio waited for TwiML: whatever came back is never acted on.
    if (this.state.gone) return { kind: 'caller-hung-up', during };
    if (res.status !== 200) return { kind: 'webhook-failed', status: res.status, body: res.body };
    let doc: TwimlNode;
    try {
      doc = readTwiml(res.body);
    } catch (err) {
      return { kind: 'webhook-failed', status: res.status, body: (err as Error).message };
    }
    return this.run(doc);
  }

  /** Runs a TwiML document; `transfer`: the referUrl's answer, whose <Dial> rings the person the bot sent the caller to. */
  private async run(doc: TwimlNode, transfer = false): Promise<TwilioCallEnd> {
    for (const verb of doc.children) {
      switch (verb.name) {
        case 'Hangup': return { kind: 'hangup' };
        case 'Reject': return { kind: 'rejected', reason: verb.attrs.reason ?? 'rejected' };
        case 'Redirect': return { kind: 'redirected', url: verb.text.trim() };
        case 'Dial': {
          if (transfer) return this.dialPerson(verb);
          const sip = verb.children.find((n) => n.name === 'Sip');
          if (!sip) return { kind: 'dialed-person', target: (verb.children[0]?.text ?? verb.text).trim() };
          const leg = await this.dialSip(verb, sip);
          // An accepted REFER: the bot leg is over and the referUrl's TwiML goes on, not the <Dial> action.
          if (leg.referTwiml) return this.run(leg.referTwiml, true);
          if (verb.attrs.action) return this.dialAction(verb.attrs.action, leg);
          if (this.state.gone) return { kind: 'caller-hung-up', during: 'bot' };
          break; // no action: Twilio goes on with the next verb
        }
        default: throw new Error(`the stand-in does not run <${verb.name}>`);
      }
    }
    return { kind: 'hangup' }; // the end of a document hangs up
  }

  private async dialSip(dial: TwimlNode, sip: TwimlNode): Promise<LegEnd> {
    const parsed = parseSipUri(sip.text);
    if (parsed.problem) {
      this.sim.problems.push(parsed.problem);
      return { dialCallStatus: 'failed' };
    }
    const invite = inviteFor(parsed, dial.attrs.callerId ?? this.params().From!, this.call.sid, this.sim.accountSid);
    this.sim.noteInvite(invite, this.call.sid);
    const timeoutMs = Number(dial.attrs.timeout ?? 30) * this.sim.msPerRingSecond;
    const answered = () => {
      this.call.botAnswered = true;
      const events = (sip.attrs.statusCallbackEvent ?? '').split(/\s+/);
      if (sip.attrs.statusCallback && events.includes('answered')) {
        void this.sim.post(this.call.sid, sip.attrs.statusCallback, { ...this.params(), CallStatus: 'in-progress', CallSid: `CA${randomBytes(16).toString('hex')}`, ParentCallSid: this.call.sid });
      }
    };
    const behaviour = this.sim.botBehaviour(invite);
    if (behaviour.kind !== 'answer' || !behaviour.refer) return runBotLeg(behaviour, timeoutMs, this.callerGone, answered);
    return this.botLegWithRefer(behaviour, behaviour.refer, dial.attrs.referUrl, timeoutMs, answered);
  }

  /**
   * A bot that sends a REFER `refer.afterMs` after answering ("Inbound SIP REFER to Twilio"):
   * without referUrl on the <Dial> Twilio refuses it (error 13802); with one, Twilio POSTs the
   * referUrl with ReferTransferTarget (the Refer-To) and, if the answer is a <Dial>, ends the bot
   * leg and runs that TwiML on the caller's call. Anything else refuses the REFER: the bot stays.
   */
  private async botLegWithRefer(
    behaviour: BotBehaviour, refer: { afterMs: number; to: string }, referUrl: string | undefined, timeoutMs: number, answered: () => void,
  ): Promise<LegEnd> {
    let accept!: () => void;
    const accepted = new Promise<void>((resolve) => { accept = resolve; });
    let referTwiml: TwimlNode | undefined;
    const sendRefer = async () => {
      if (this.state.gone) return;
      if (!referUrl) return void this.sim.refers.push({ to: refer.to, outcome: 'refused', why: 'no referUrl (13802)' });
      const res = await this.sim.post(this.call.sid, referUrl, { ...this.params(), CallStatus: 'in-progress', ReferTransferTarget: `<sip:${refer.to}@twilio.sim>` });
      let doc: TwimlNode | undefined;
      try {
        doc = res.status === 200 ? readTwiml(res.body) : undefined;
      } catch {
        doc = undefined;
      }
      if (doc?.children[0]?.name !== 'Dial') return void this.sim.refers.push({ to: refer.to, outcome: 'refused', why: doc?.children[0]?.name ?? `HTTP ${res.status}` });
      this.sim.refers.push({ to: refer.to, outcome: 'accepted' });
      referTwiml = doc;
      accept();
    };
    const onAnswer = () => {
      answered();
      setTimeout(() => void sendRefer(), refer.afterMs).unref();
    };
    const leg = await runBotLeg(behaviour, timeoutMs, Promise.race([this.callerGone, accepted]), onAnswer);
    return referTwiml ? { ...leg, endedBy: 'bot', referTwiml } : leg;
  }

  /** A transfer's <Dial> to a person: rings as the test scripts it, then its action (or the next verb). */
  private async dialPerson(dial: TwimlNode): Promise<TwilioCallEnd> {
    const target = (dial.children[0]?.text ?? dial.text).trim();
    const timeoutMs = Number(dial.attrs.timeout ?? 30) * this.sim.msPerRingSecond;
    const status = await ringPerson(this.sim.personBehaviour(target), timeoutMs, this.callerGone);
    this.sim.transfers.push({ target, status });
    if (!dial.attrs.action) return this.state.gone ? { kind: 'caller-hung-up', during: 'other' } : { kind: 'hangup' };
    const params = { CallStatus: this.state.gone ? 'completed' : 'in-progress', DialCallStatus: status, DialCallSid: `CA${randomBytes(16).toString('hex')}` };
    if (this.state.gone) {
      await this.sim.post(this.call.sid, dial.attrs.action, { ...this.params(), ...params });
      return { kind: 'caller-hung-up', during: 'other' };
    }
    return this.fetchAndRun(dial.attrs.action, params, 'other');
  }

  /**
   * The <Dial> action: DialCallStatus and friends, and the caller's own CallStatus (completed once
   * the caller has hung up, and then Twilio does not run the TwiML it gets back).
   */
  private async dialAction(url: string, leg: LegEnd): Promise<TwilioCallEnd> {
    const duration = leg.answeredAt !== undefined ? Math.round((Date.now() - leg.answeredAt) / 1000) : 0;
    const params = {
      CallStatus: this.state.gone ? 'completed' : 'in-progress',
      DialCallStatus: leg.dialCallStatus, DialCallSid: `CA${randomBytes(16).toString('hex')}`, DialCallDuration: String(duration),
      ...(leg.sipCode !== undefined ? { DialSipResponseCode: String(leg.sipCode) } : {}),
    };
    if (this.state.gone) {
      await this.sim.post(this.call.sid, url, { ...this.params(), ...params });
      return { kind: 'caller-hung-up', during: 'bot' };
    }
    return this.fetchAndRun(url, params, 'other');
  }
}
