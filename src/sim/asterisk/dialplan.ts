/**
 * The dialplan the simulated Asterisk runs around our Stasis app, as shipped in dialplan/asterisk:
 * [from-customers]' trunk check before Stasis() (read from extensions.conf), [twin-bot]'s Dial()
 * to the bot with its handlers and reports (twin-bot.conf), and the contexts DIALPLAN_EXISTS()
 * and a transfer look extensions up in.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { answer, asteriskTime, buildInvite, channelJson, fromHeader, type AriSimOptions, type CallerResult, type SimChannel } from './model.js';
import { callerExit, type SimCall } from '../call-model.js';
import { asteriskBotDialGoesOn, asteriskCallerGreeting, asteriskRingbackCheck, asteriskTrunkCheck, type CallerContext } from '../shipped-dialplan.js';
import { AriBridges } from './bridges.js';
import { callTimer } from '../simulated-pbx.js';

export interface PlaceCallOptions {
  number?: string;
  name?: string;
  dialed?: string;
  /** Stasis(app,args...) arguments after the app name. */
  args?: string[];
  app?: string;
  /**
   * Asterisk stamped the StasisStart this long before it reached the websocket: its app queue
   * backed up on a box out of CPU (the event's `timestamp` is when the channel entered Stasis()).
   */
  stasisLagMs?: number;
  /** How long before its StasisStart the caller's channel was created (Asterisk itself late): its creationtime. */
  createdBeforeStasisMs?: number;
  /** The shipped context the caller comes through (default [from-customers]: its phone rings, not answered). */
  context?: CallerContext;
}

export abstract class AriDialplan extends AriBridges {
  constructor(options: AriSimOptions) {
    super(options);
    this.dialplan = new Map([
      ['twin-fallback', new Set(['s', 'agent'])], [options.botDialContext ?? 'twin-bot', new Set<string>()], ['from-caller', new Set(['100'])],
      ...Object.entries(this.transferContexts()).map(([context, extensions]) => [context, new Set(extensions)] as const),
    ]);
  }

  /**
   * The dialplan DIALPLAN_EXISTS() looks in: context → literal extensions (priorities are not
   * modelled: an extension has them all). The shipped [twin-fallback] (s, agent), [twin-bot] (a
   * pattern: only the context is asked for), the transfer contexts and the lab's [from-caller].
   */
  readonly dialplan: Map<string, Set<string>>;
  protected readonly deviceStates = new Map<string, string>();

  /** The shipped [from-customers]' checks (trunk closed, product overloaded), read from extensions.conf: they run before Stasis(). */
  private readonly trunkChecks = [asteriskTrunkCheck(), asteriskTrunkCheck(undefined, 1)];
  private readonly shippedBotDialGoesOn = asteriskBotDialGoesOn();
  /** What each shipped caller context does before Stasis(): answer, ring the phone, Playtones(ring) unless its INUSE check skips it. */
  private readonly callerContexts = new Map((['from-customers', 'from-customers-answered'] as const).map((context) => [context, {
    ...asteriskCallerGreeting(context), ringbackCheck: asteriskRingbackCheck(context),
  }]));

  /** A caller through a shipped context that runs Stasis(app, args...), unless its trunk check skips the product. */
  placeCall(opts: PlaceCallOptions = {}): SimCall {
    const appName = opts.app ?? [...this.apps.keys()][0] ?? 'twin';
    const id = this.nextId();
    const ch = this.newChannel(id, `PJSIP/caller-${this.hexSeq()}`, 'caller', {
      name: opts.name ?? 'Customer', number: opts.number ?? '+15551230000',
    });
    const shipped = this.callerContexts.get(opts.context ?? 'from-customers')!;
    if (shipped.answers) {
      ch.state = 'Up';
      ch.answeredAt = performance.now(); // Answer(,i) before Stasis()
    } else {
      ch.state = 'Ring'; // answered later: by the bot's Dial(), the product (POST answer) or Queue()
    }
    // Ringing(): the caller's phone rings (180). Playtones(ring), unless its device-state check skipped it.
    const quiet = shipped.ringbackCheck && this.deviceStates.get(`Custom:${shipped.ringbackCheck.name}`) === shipped.ringbackCheck.skipsOn;
    ch.ringing = shipped.ringsPhone || (shipped.playsTones && (opts.args ?? []).includes('ringback=dialplan') && !quiet);
    if (opts.createdBeforeStasisMs) ch.creationtime = asteriskTime(new Date(Date.now() - opts.createdBeforeStasisMs));
    ch.dialplan = { context: 'from-caller', exten: opts.dialed ?? '100', priority: 4, app_name: 'Stasis', app_data: [appName, ...(opts.args ?? [])].join(',') };
    const { left, settle } = callerExit();
    this.callerWaiters.set(id, settle);
    const check = this.trunkChecks.find((c) => c.skips(this.deviceStates.get(`Custom:${c.name}`)));
    if (check) {
      const { vars, ...target } = check.fallback;
      for (const [name, value] of Object.entries(vars)) ch.vars.set(name, value);
      this.finishCaller(ch, { kind: 'continued', ...target, vars: {} });
    } else if (!this.appConnected(appName)) {
      this.finishCaller(ch, { kind: 'app-unavailable', vars: { STASISSTATUS: 'FAILED' } });
    } else {
      this.channels.set(id, ch);
      ch.app = appName;
      ch.appArgs = opts.args ?? [];
      ch.stasisStartAt = performance.now();
      const stampedAt = opts.stasisLagMs ? { timestamp: asteriskTime(new Date(Date.now() - opts.stasisLagMs)) } : {};
      this.emit(appName, 'StasisStart', { ...stampedAt, args: ch.appArgs, channel: channelJson(ch) });
    }
    return { id, left, hangup: () => this.remoteHangup(id, 'caller') };
  }

  protected continueChannel(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    if (q.get('context') === (this.options.botDialContext ?? 'twin-bot')) {
      const twinId = q.get('extension') ?? '';
      this.afterReply.push(() => this.runBotDialplan(ch, twinId));
      const app = ch.app;
      ch.app = undefined;
      this.emit(app, 'StasisEnd', { channel: channelJson(ch) });
      ch.botDial = { app: app!, startedAt: performance.now() };
      // GET /channels shows it at twin-bot.conf's Dial() (priority 4) from now on, no longer in Stasis.
      const [dialString = '', timeout = ''] = (ch.vars.get('TWIN_BOT') ?? '').split('^');
      ch.dialplan = { context: q.get('context')!, exten: twinId, priority: 4, app_name: 'Dial', app_data: `${dialString},${timeout},gb(twin-bot-leg^s^1)U(twin-bot-answered^s)` };
      return [204, undefined];
    }
    const result: CallerResult = {
      kind: 'continued', context: q.get('context') ?? ch.dialplan.context, extension: q.get('extension') ?? ch.dialplan.exten,
      priority: Number(q.get('priority') ?? ch.dialplan.priority + 1), vars: {},
    };
    this.leaveBridge(ch);
    const app = ch.app;
    ch.app = undefined;
    this.emit(app, 'StasisEnd', { channel: channelJson(ch) });
    this.finishCaller(ch, result);
    this.channels.delete(ch.id);
    return [204, undefined];
  }

  /**
   * Dial(${CUT(TWIN_BOT,^,1)},${CUT(TWIN_BOT,^,2)},b(twin-bot-leg…)): the pre-dial handler Set()s
   * each assignment (${TWIN_ID} → the extension) on the bot's channel; the INVITE's From is its
   * connected line. When Dial()
   * returns, the caller enters Stasis again with how it went.
   */
  private runBotDialplan(ch: SimChannel, twinId: string): void {
    ch.ringing = false; // [twin-bot] StopPlaytones(): the ring (ARI's or the dialplan's Playtones) ends here
    const [dial = '', timeout = '0', ...assignments] = (ch.vars.get('TWIN_BOT') ?? '').split('^');
    const headers: [string, string][] = [];
    const connected = { ...ch.caller };
    // The handler's EVAL: ${TWIN_ID} (set from the extension) is the only variable in an assignment.
    for (const assignment of assignments.map((a) => a.replaceAll('${TWIN_ID}', twinId))) {
      const header = /^PJSIP_HEADER\(add,([^)]+)\)=(.*)$/.exec(assignment);
      const line = /^CONNECTEDLINE\((num|name)(?:,i)?\)=(.*)$/.exec(assignment);
      if (header) headers.push([header[1]!, header[2]!]);
      else if (line) connected[line[1] === 'num' ? 'number' : 'name'] = line[2]!;
    }
    const requestUri = /^PJSIP\/[^/]+\/(.+)$/.exec(dial)?.[1] ?? this.options.contact ?? 'sip:127.0.0.1:5070';
    const invite = buildInvite(requestUri, fromHeader(connected), headers, randomUUID());
    this.inviteSent(invite, ch.stasisStartAt, ch.id);
    const later = (ms: number, fn: () => void): void => callTimer(ch.timers, ms, fn);
    const b = this.botBehaviour(invite);
    switch (b.kind) {
      case 'answer':
        return later(b.afterMs ?? 5, () => {
          ch.botDial!.answeredAt = performance.now();
          answer(ch); // Dial() answers a caller left ringing
          ch.vars.set('TWIN_STATUS', 'CONNECTED'); // U(twin-bot-answered): MASTER_CHANNEL(TWIN_STATUS)
          if (b.hangupAfterMs !== undefined) later(b.hangupAfterMs, () => this.botLeftBotDial(ch));
          if (b.refer) later(b.refer.afterMs, () => this.referInBotDial(ch, b.refer!.to));
        });
      case 'busy': return later(b.afterMs ?? 5, () => this.botDialReturned(ch, 'BUSY', 'SIP 486 Busy Here'));
      case 'unavailable': return later(b.afterMs ?? 5, () => this.botDialReturned(ch, 'CONGESTION', 'SIP 503 Service Unavailable'));
      case 'no-answer': return later(Number(timeout) * 1000, () => this.botDialReturned(ch, 'NOANSWER'));
    }
  }

  /** Dial() returned with the caller still here: Stasis(twin,twin_report=dial,…). */
  private botDialReturned(ch: SimChannel, status: string, sip = ''): void {
    const dial = ch.botDial;
    if (!dial || !this.channels.has(ch.id)) return;
    ch.botDial = undefined;
    this.enterStasisAgain(ch, dial.app, ['twin_report=dial', `status=${status}`, `sip=${sip}`, ...answerTimes(ch, dial)]);
  }

  /**
   * The bot hangs up an answered Dial(): with `g` the caller goes on in the dialplan; without it
   * Asterisk hangs the caller up too, and its hangup handler reports (real Asterisk 22.10.1).
   */
  protected botLeftBotDial(ch: SimChannel): void {
    if (this.options.botDialGoesOn ?? this.shippedBotDialGoesOn) return this.botDialReturned(ch, 'ANSWER');
    if (!ch.botDial || !this.channels.has(ch.id)) return;
    const dial = ch.botDial;
    ch.botDial = undefined;
    ch.timers.forEach(clearTimeout);
    this.enterStasisAgain(ch, dial.app, ['twin_report=hangup', 'status=ANSWER', ...answerTimes(ch, dial), `transfer=${dial.transferredTo ?? ''}`]);
    this.destroy(ch, { hangupCause: 16, destroyCause: 16, causeTxt: 'Normal Clearing' }, { kind: 'hungup-by-app', vars: {} });
  }

  /** The caller hangs up during Dial(): its hangup handler runs Stasis(twin,twin_report=hangup,…) and it is gone at once. */
  protected callerLeftBotDial(ch: SimChannel): void {
    const dial = ch.botDial!;
    ch.botDial = undefined;
    ch.timers.forEach(clearTimeout);
    const status = dial.answeredAt !== undefined ? 'ANSWER' : 'CANCEL';
    this.enterStasisAgain(ch, dial.app, ['twin_report=hangup', `status=${status}`, ...answerTimes(ch, dial), `transfer=${dial.transferredTo ?? ''}`]);
    this.destroy(ch, { hangupCause: undefined, destroyCause: 16, causeTxt: 'Normal Clearing' }, { kind: 'hungup-by-caller', vars: {} });
  }

  private enterStasisAgain(ch: SimChannel, app: string, args: string[]): void {
    ch.app = app;
    ch.appArgs = args;
    // After Dial() in [twin-bot] (priority 6), or in the hangup handler [twin-bot-ended].
    const where = args[0] === 'twin_report=dial'
      ? { context: this.options.botDialContext ?? 'twin-bot', exten: ch.dialplan.exten, priority: 6 } : { context: 'twin-bot-ended', exten: 's', priority: 1 };
    ch.dialplan = { ...where, app_name: 'Stasis', app_data: [app, ...args].join(',') };
    if (!this.appConnected(app)) {
      ch.app = undefined;
      // twin-bot.conf: Stasis() failed, so Goto(twin-fallback,agent,1): the caller waits in the queue.
      if (args[0] === 'twin_report=dial') {
        ch.vars.set('STASISSTATUS', 'FAILED');
        ch.dialplan = { context: 'twin-fallback', exten: 'agent', priority: 2, app_name: 'Queue', app_data: 'agents,t' };
        this.finishCaller(ch, { kind: 'app-unavailable', vars: { STASISSTATUS: 'FAILED' } });
      }
      return;
    }
    this.emit(app, 'StasisStart', { args, channel: channelJson(ch) });
  }

  /** DIALPLAN_EXISTS(context[,extension[,priority]]) as funcs/func_dialplan.c answers it with no channel: '1' or '0'. */
  protected readFunction(call: string): string | undefined {
    const m = /^DIALPLAN_EXISTS\((.*)\)$/.exec(call);
    if (!m || m[1] === '') return undefined;
    const [context = '', extension = ''] = m[1]!.split(',');
    const extensions = this.dialplan.get(context);
    const found = extension === '' ? extensions !== undefined : extensions?.has(extension) ?? false;
    return found ? '1' : '0';
  }

  protected transferExtensionExists(context: string, extension: string): boolean {
    return this.transferContexts()[context]?.includes(extension) ?? false;
  }

  private transferContexts(): Record<string, string[]> {
    return this.options.transferExtensions ?? { 'twin-transfers': ['operator'], 'from-twin': ['200', 'operator'] };
  }

  // Done by the layers above: refer.ts.
  protected abstract referInBotDial(caller: SimChannel, to: string): void;
}

/**
 * The variables a report of twin-bot.conf carries about the answer: ANSWEREDTIME_MS is the caller's
 * own up time (app_dial.c end_bridge_callback: ast_channel_get_up_time_ms(chan)), TWIN_ANSWERED_AT
 * and now are epoch ms (STRFTIME(,,%s%3q)) from [twin-bot-answered] and the report line.
 */
function answerTimes(caller: SimChannel, dial: { answeredAt?: number }): string[] {
  const epochMs = (at: number) => String(Math.round(performance.timeOrigin + at));
  const upMs = caller.answeredAt === undefined ? '' : String(Math.round(performance.now() - caller.answeredAt));
  return [`answered_ms=${upMs}`, `answered_at=${dial.answeredAt === undefined ? '' : epochMs(dial.answeredAt)}`, `now=${epochMs(performance.now())}`];
}
