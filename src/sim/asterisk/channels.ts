/**
 * Channels of the simulated Asterisk: the caller's, the legs the product creates (create + dial)
 * or originates, how a dialled leg rings and answers or fails as the far end's behaviour says, and
 * how a channel hangs up, with the event order recorded from Asterisk 22.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { asteriskTime, buildInvite, channelJson, fromHeader, inStasis, type AriSimOptions, type BotBehaviour, type CallerResult, type SimChannel, type SimInvite } from './model.js';
import { callerExit, type PersonBehaviour } from '../call-model.js';
import { StasisApp } from './stasis-app.js';
import { callTimer } from '../simulated-pbx.js';
import { recordedStasisEntryDelay, RTP_QOS_VARS } from './quirks.js';

export abstract class AriChannels extends StasisApp {
  constructor(options: AriSimOptions) {
    super(options);
    this.pjsipEndpoints = new Set(options.endpoints ?? ['twin', 'carrier']);
  }

  /** PJSIP endpoints pjsip.conf defines; a test may add or remove one while the product runs. */
  readonly pjsipEndpoints: Set<string>;
  protected readonly callerWaiters = new Map<string, (r: CallerResult) => void>();
  private seq = 0;
  private readonly epoch = Math.floor(Date.now() / 1000);
  /** The person behind a transfer destination (context, extension) answers, rings on or is busy. */
  personBehaviour: (context: string, extension: string) => PersonBehaviour = () => ({ kind: 'answer', afterMs: 5 });

  protected nextId(): string {
    this.seq += 1;
    return `${this.epoch}.${this.seq}`;
  }

  protected hexSeq(): string {
    return this.seq.toString(16).padStart(8, '0');
  }

  protected newChannel(id: string, name: string, role: SimChannel['role'], caller: { name: string; number: string }): SimChannel {
    return {
      id, name, role, caller, state: 'Down', protocolId: randomUUID(), creationtime: asteriskTime(),
      dialplan: { context: 'default', exten: 's', priority: 1, app_name: '', app_data: '' },
      appArgs: [], vars: new Map(), ringing: false, moh: false, dialled: false, timers: [],
    };
  }

  protected withChannel(id: string, fn: (ch: SimChannel) => [number, unknown]): [number, unknown] {
    const ch = this.channels.get(id);
    return ch ? fn(ch) : [404, { message: 'Channel not found' }];
  }

  protected withStasisChannel(id: string, fn: (ch: SimChannel) => [number, unknown]): [number, unknown] {
    return this.withChannel(id, (ch) => (inStasis(ch) ? fn(ch) : [409, { message: 'Channel not in Stasis application' }]));
  }

  protected setVar(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    const variable = q.get('variable');
    if (!variable) return [400, { message: 'Variable name is required' }];
    // `_NAME` / `__NAME` only mark inheritance: the dialplan reads it as ${NAME}.
    ch.vars.set(variable.replace(/^_{1,2}/, ''), q.get('value') ?? '');
    this.onChannelVar?.(ch.id, variable, q.get('value') ?? '');
    // PJSIP_HEADER(...) writes produce no ChannelVarset (fixture README, point 8).
    if (!variable.startsWith('PJSIP_HEADER')) this.emitVarset(ch, variable, q.get('value') ?? '');
    return [204, undefined];
  }

  protected createChannel(q: URLSearchParams, body?: Record<string, unknown>): [number, unknown] {
    const parsed = channelParams(q, body);
    if ('error' in parsed) return parsed.error;
    const { endpoint, appName, variables } = parsed;
    const [tech, resource] = endpoint.split('/');
    const local = tech === 'Local' && /^[^@]+@[^@]+$/.test(resource ?? '');
    if (!local && (tech !== 'PJSIP' || !this.pjsipEndpoints.has(resource ?? ''))) return [500, { error: 'Allocation failed' }];
    const id = q.get('channelId') ?? this.nextId();
    // resource_channels.c: ast_request() refuses an id in use (AST_CHANNEL_ERROR_ID_EXISTS).
    if (this.channels.has(id)) return [409, { message: 'Channel with given unique ID already exists' }];
    const ch = this.newChannel(id, local ? `Local/${resource}-${this.hexSeq()};1` : `PJSIP/${resource}-${this.hexSeq()}`, 'created', { name: '', number: '' });
    ch.endpoint = endpoint;
    ch.originatorId = q.get('originator') ?? undefined;
    for (const [k, v] of Object.entries(variables)) ch.vars.set(k, v);
    ch.app = appName;
    ch.appArgs = (q.get('appArgs') ?? '').split(',').filter((a) => a !== '');
    ch.dialplan = { context: 'from-twin', exten: 's', priority: 1, app_name: '', app_data: '' };
    this.channels.set(id, ch);
    ch.enteringStasis = true;
    const announce = () => {
      if (!this.channels.has(id)) return;
      ch.enteringStasis = false;
      // Fixture a2: from here on the channel's dialplan shows it in Stasis with the app's arguments.
      ch.dialplan = { ...ch.dialplan!, app_name: 'Stasis', app_data: [appName, ...ch.appArgs].join(',') };
      this.emit(appName, 'ChannelDialplan', { channel: channelJson(ch), dialplan_app: 'Stasis', dialplan_app_data: [appName, ...ch.appArgs].join(',') });
      this.emit(appName, 'StasisStart', { args: ch.appArgs, channel: channelJson(ch) });
    };
    const delayMs = (this.options.stasisEntryDelayMs ?? recordedStasisEntryDelay)();
    if (delayMs <= 0) announce();
    else this.afterReply.push(() => callTimer(ch.timers, delayMs, announce));
    return [200, channelJson(ch)];
  }

  /** POST /channels with app=: rings PJSIP/<number>@<endpoint>; answered, it enters Stasis (b1, d4, d6). */
  protected originate(q: URLSearchParams, body?: Record<string, unknown>): [number, unknown] {
    const parsed = channelParams(q, body);
    if ('error' in parsed) return parsed.error;
    const { endpoint, appName, variables } = parsed;
    const m = /^PJSIP\/([^@/]+)@([^/]+)$/.exec(endpoint);
    if (!m || !this.pjsipEndpoints.has(m[2]!)) return [500, { error: 'Allocation failed' }];
    const id = q.get('channelId') ?? this.nextId();
    if (this.channels.has(id)) return [409, { message: 'Channel with given unique ID already exists' }];
    const callerId = /<([^>]*)>/.exec(q.get('callerId') ?? '')?.[1] ?? q.get('callerId') ?? '';
    const ch = this.newChannel(id, `PJSIP/${m[2]}-${this.hexSeq()}`, 'created', { name: '', number: callerId });
    ch.endpoint = endpoint;
    ch.subscriber = m[1]!;
    for (const [k, v] of Object.entries(variables)) ch.vars.set(k, v);
    ch.app = appName;
    ch.awaitingAnswer = true;
    ch.appArgs = (q.get('appArgs') ?? '').split(',').filter((a) => a !== '');
    ch.dialplan = { context: 'default', exten: m[1]!, priority: 1, app_name: '', app_data: '' };
    this.channels.set(id, ch);
    const { left, settle } = callerExit();
    this.callerWaiters.set(id, settle);
    this.dials.push({ id, to: m[1]!, from: callerId, left, hangup: () => this.remoteHangup(id, 'caller') });
    const timeoutS = Number(q.get('timeout') ?? '30');
    this.afterReply.push(() => this.ring(ch, this.subscriberBehaviour(m[1]!), timeoutS));
    return [200, channelJson(ch)];
  }

  protected dial(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    if (ch.role !== 'created' || ch.state !== 'Down') return [409, { message: "Channel is not in the 'Down' state" }];
    if (ch.dialled) {
      // A second dial on the same channel hangs it up (fixture e1).
      this.afterReply.push(() => this.destroy(ch, { hangupCause: undefined, destroyCause: 16, causeTxt: 'Normal Clearing' }));
      return [204, undefined];
    }
    ch.dialled = true;
    ch.dialAt = performance.now();
    if (ch.endpoint?.startsWith('Local/')) {
      // Local;2 runs <extension>@<context>: the person there rings (no INVITE to the bot).
      const [extension = '', context = ''] = ch.endpoint.slice('Local/'.length).split('/')[0]!.split('@');
      this.afterReply.push(() => this.ring(ch, this.personBehaviour(context, extension), Number(q.get('timeout') ?? '0')));
      return [204, undefined];
    }
    // dial?caller= copies the caller's own id onto the leg's connected line, over what the create set
    // (resource_channels.c: ast_connected_line_copy_from_caller); without it the create's stays.
    const callerChannel = this.channels.get(q.get('caller') ?? ch.originatorId ?? '');
    ch.callerChannelId = callerChannel?.id;
    const connected = q.has('caller') ? callerChannel?.caller : connectedLineOf(ch);
    const invite = this.makeInvite(ch, connected);
    ch.invite = invite;
    this.inviteSent(invite, callerChannel?.stasisStartAt, callerChannel?.id ?? '', ch.dialAt);
    const timeoutS = Number(q.get('timeout') ?? '0');
    this.afterReply.push(() => this.ring(ch, this.botBehaviour(invite), timeoutS));
    return [204, undefined];
  }

  private makeInvite(ch: SimChannel, connected?: { name: string; number: string }): SimInvite {
    const target = (ch.endpoint ?? '').split('/').slice(2).join('/');
    const requestUri = target || this.options.contact || 'sip:127.0.0.1:5070';
    const headers: [string, string][] = [];
    for (const [k, v] of ch.vars) {
      const m = /^PJSIP_HEADER\(add,([^)]+)\)$/.exec(k);
      if (m) headers.push([m[1]!, v]);
    }
    return buildInvite(requestUri, fromHeader(connected), headers, ch.protocolId);
  }

  /** A dialled leg (bot leg or originated subscriber) rings, then answers or fails as `b` says. */
  protected ring(ch: SimChannel, b: BotBehaviour | PersonBehaviour, timeoutS: number): void {
    const dialstring = (ch.endpoint ?? '').replace(/^PJSIP\//, '');
    const peer = () => channelJson(ch);
    this.emit(ch.app, 'Dial', { peer: peer(), dialstatus: '', dialstring, forward: '' });
    ch.state = 'Ringing';
    this.emit(ch.app, 'ChannelStateChange', { channel: peer() });
    this.emit(ch.app, 'Dial', { peer: peer(), dialstatus: 'RINGING' });
    const later = (ms: number, fn: () => void): void => callTimer(ch.timers, ms, fn);
    // Only an originated leg reports a final Dial status on failure; create+dial does not (d1 vs d4).
    const finalDial = (status: string) => (ch.awaitingAnswer ? status : undefined);
    if (timeoutS > 0) {
      later(timeoutS * 1000, () => this.destroy(ch, { hangupCause: 32, soft: true, destroyCause: 19, causeTxt: 'User alerting, no answer', techCause: 480, dialstatus: finalDial('NOANSWER') }));
    }
    switch (b.kind) {
      case 'answer':
        return later(b.afterMs ?? 5, () => {
          ch.timers.forEach(clearTimeout);
          ch.state = 'Up';
          this.emit(ch.app, 'ChannelStateChange', { channel: peer() });
          this.emit(ch.app, 'Dial', { peer: peer(), dialstatus: 'ANSWER' });
          if (ch.awaitingAnswer) {
            ch.awaitingAnswer = false;
            ch.stasisStartAt = performance.now();
            ch.dialplan = { ...ch.dialplan!, app_name: 'Stasis', app_data: [ch.app, ...ch.appArgs].join(',') };
            this.emit(ch.app, 'StasisStart', { args: ch.appArgs, channel: channelJson(ch) });
          }
          if ('hangupAfterMs' in b && b.hangupAfterMs !== undefined) later(b.hangupAfterMs, () => this.remoteHangup(ch.id, 'bot'));
          if ('refer' in b && b.refer) later(b.refer.afterMs, () => this.referFromBot(ch, b.refer!.to));
        });
      case 'busy':
        return later(b.afterMs ?? 5, () => this.destroy(ch, { hangupCause: 17, techCause: 486, destroyCause: 17, causeTxt: 'User busy', dialstatus: finalDial('BUSY') }));
      case 'unavailable':
        return later(b.afterMs ?? 5, () => this.destroy(ch, { hangupCause: 34, techCause: 503, destroyCause: 34, causeTxt: 'Circuit/channel congestion', dialstatus: finalDial('CONGESTION') }));
      case 'no-answer':
        return;
    }
  }

  /** A BYE from the far end: the caller (no cause) or the bot (cause 16). */
  protected remoteHangup(id: string, who: 'caller' | 'bot'): void {
    const ch = this.channels.get(id);
    if (!ch) return;
    if (ch.botDial) return who === 'caller' ? this.callerLeftBotDial(ch) : this.botLeftBotDial(ch);
    if (who === 'caller') this.destroy(ch, { hangupCause: undefined, destroyCause: 16, causeTxt: 'Normal Clearing' }, { kind: 'hungup-by-caller', vars: {} });
    else this.destroy(ch, { hangupCause: 16, destroyCause: 16, causeTxt: 'Normal Clearing' });
  }

  protected appHangup(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    const result: CallerResult = { kind: 'hungup-by-app', reasonCode: q.get('reason_code') ?? undefined, reason: q.get('reason') ?? undefined, vars: {} };
    this.afterReply.push(() => this.destroy(ch, { hangupCause: 32, soft: true, destroyCause: 16, causeTxt: 'Normal Clearing' }, result));
    return [204, undefined];
  }

  /** Hang-up of a channel: the recorded event order, then a caller goes back to the dialplan. */
  protected destroy(
    ch: SimChannel,
    how: { hangupCause?: number; soft?: boolean; techCause?: number; destroyCause: number; causeTxt: string; dialstatus?: string },
    callerResult?: CallerResult,
  ): void {
    if (!this.channels.has(ch.id)) return;
    ch.timers.forEach(clearTimeout);
    const app = ch.app;
    const hangup: Record<string, unknown> = { channel: channelJson(ch) };
    if (how.hangupCause !== undefined) hangup.cause = how.hangupCause;
    if (how.techCause !== undefined) hangup.tech_cause = how.techCause;
    if (how.soft) hangup.soft = true;
    this.emit(app, 'ChannelHangupRequest', hangup);
    if (how.dialstatus !== undefined) this.emit(app, 'Dial', { peer: channelJson(ch), dialstatus: how.dialstatus });
    if (ch.bridgeId) this.bridges.get(ch.bridgeId)!.hadHangupInside = true;
    this.leaveBridge(ch);
    if (ch.state === 'Up') for (let i = 0; i < RTP_QOS_VARS; i++) this.emitVarset(ch, `RTPAUDIOQOS${i}`, '');
    if (app && !ch.awaitingAnswer) this.emit(app, 'StasisEnd', { channel: channelJson(ch) });
    ch.app = undefined;
    this.channels.delete(ch.id);
    if (ch.role === 'created') {
      // Only channels we created report ChannelDestroyed; a caller has gone back to the dialplan (fixture a1).
      const destroyed: Record<string, unknown> = { channel: channelJson(ch), cause: how.destroyCause, cause_txt: how.causeTxt };
      if (how.techCause !== undefined) destroyed.tech_cause = how.techCause;
      this.emit(app, 'ChannelDestroyed', destroyed);
      if (ch.subscriber !== undefined) this.finishCaller(ch, callerResult ?? { kind: 'hungup-by-caller', vars: {} });
    } else {
      this.finishCaller(ch, callerResult ?? { kind: 'hungup-by-caller', vars: {} });
    }
  }

  protected finishCaller(ch: SimChannel, result: CallerResult): void {
    result.vars = { ...Object.fromEntries(ch.vars), ...result.vars };
    const waiter = this.callerWaiters.get(ch.id);
    this.callerWaiters.delete(ch.id);
    waiter?.(result);
  }

  // Done by the layers above: bridges.ts, dialplan.ts, refer.ts.
  protected abstract botLeftBotDial(ch: SimChannel): void;
  protected abstract callerLeftBotDial(ch: SimChannel): void;
  protected abstract leaveBridge(ch: SimChannel): void;
  protected abstract referFromBot(bot: SimChannel, to: string): void;
}

/** What POST /channels and /channels/create both require, with Asterisk's error bodies. */
function channelParams(q: URLSearchParams, body?: Record<string, unknown>):
  { endpoint: string; appName: string; variables: Record<string, string> } | { error: [number, unknown] } {
  const endpoint = q.get('endpoint');
  const appName = q.get('app');
  if (!endpoint) return { error: [400, { message: 'Endpoint must be specified' }] };
  if (!appName) return { error: [400, { message: 'Application or extension must be specified' }] };
  const variables = (body?.variables ?? {}) as Record<string, unknown>;
  if (Object.values(variables).some((v) => typeof v !== 'string')) {
    return { error: [400, { message: "Each value in 'variables' must be a string or an object with 'value' and optional 'report_events'" }] };
  }
  return { endpoint, appName, variables: variables as Record<string, string> };
}

/** The connected line a create's CONNECTEDLINE(num|name[,i]) variables set; undefined when none did. */
function connectedLineOf(ch: SimChannel): { name: string; number: string } | undefined {
  const number = ch.vars.get('CONNECTEDLINE(num,i)') ?? ch.vars.get('CONNECTEDLINE(num)');
  const name = ch.vars.get('CONNECTEDLINE(name,i)') ?? ch.vars.get('CONNECTEDLINE(name)');
  return number === undefined && name === undefined ? undefined : { number: number ?? '', name: name ?? '' };
}
