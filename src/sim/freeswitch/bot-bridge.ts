/**
 * `bridge` to the bot: the INVITE FreeSWITCH would send (mod_sofia's, custom headers after
 * Content-Length), the bot answering, failing or hanging up as its behaviour says, the variables
 * each outcome leaves on the caller, and legs FreeSWITCH cannot build at all.
 */
import { randomUUID } from 'node:crypto';
import { causeCode } from '../../core/q850.js';
import { fromHeader, type SimInvite } from '../call-model.js';
import { appHeaders, eventHeaders, otherLeg, type BotLeg, type FsChannel, type FsSimOptions, type RunningApp } from './channel.js';
import { parseDialString } from './wire.js';
import { callTimer } from '../simulated-pbx.js';
import { ChannelApps } from './channel-apps.js';

export abstract class BotBridge extends ChannelApps {
  constructor(options: FsSimOptions) {
    super(options);
    this.gateways = new Map(Object.entries(options.gateways ?? { twin: '127.0.0.1:5072' }));
  }

  /**
   * The sofia gateways FreeSWITCH has (name → proxy host:port); a test may add or remove one while
   * the product runs. A bridge to any other `sofia/gateway/<name>/…` fails with INVALID_GATEWAY.
   */
  readonly gateways: Map<string, string>;
  /** While true, FreeSWITCH cannot build bot legs at all (as for a `\"` in the name): no INVITE is sent. */
  legCreationFails = false;

  protected bridge(ch: FsChannel, app: RunningApp): void {
    const { vars, endpoint } = parseDialString(app.arg);
    if (this.legCreationFails || /\\"/.test(vars.get('origination_caller_id_name') ?? ch.caller.name)) return this.unbuildableLeg(ch, app);
    const gateway = /^sofia\/gateway\/([^/]+)\//.exec(endpoint)?.[1];
    if (gateway !== undefined && !this.gateways.has(gateway)) return this.unbuildableLeg(ch, app, 'INVALID_GATEWAY');
    const invite = this.makeInvite(ch, endpoint, vars);
    this.inviteSent(invite, ch.socketAt, ch.uuid);
    const bot: BotLeg = { uuid: randomUUID(), state: 'ringing', invite, timers: [] };
    ch.bot = bot;
    const running: RunningApp = { ...app };
    ch.running = running;
    const botLater = (ms: number, fn: () => void) => callTimer(bot.timers, ms, fn);
    const fail = (cause: string, dialStatus: string, proto?: string, alwaysContinues = false) => {
      this.endBot(ch);
      this.setVar(ch, 'originate_disposition', cause);
      this.setVar(ch, 'DIALSTATUS', dialStatus);
      this.setVar(ch, 'last_bridge_hangup_cause', cause);
      this.setVar(ch, 'originate_failed_cause', cause);
      if (proto) this.setVar(ch, 'last_bridge_proto_specific_hangup_cause', proto);
      if (alwaysContinues || ch.vars.get('continue_on_fail') === 'true') {
        this.complete(ch, running);
        if (running.inDialplan) this.afterBotBridge(ch);
        else this.runQueue(ch);
      } else {
        this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
      }
    };
    const originateTimeout = Number(vars.get('originate_timeout') ?? 0);
    const legTimeout = Number(vars.get('leg_timeout') ?? 0);
    if (legTimeout > 0) botLater(legTimeout * 1000, () => fail('ALLOTTED_TIMEOUT', 'ALLOTTED_TIMEOUT'));
    else botLater((originateTimeout || 60) * 1000, () => fail('NO_ANSWER', 'NOANSWER', undefined, true));

    const b = this.botBehaviour(invite);
    switch (b.kind) {
      case 'answer':
        return void botLater(b.afterMs ?? 5, () => this.botAnswered(ch, running, b.hangupAfterMs, b.refer));
      case 'busy':
        return void botLater(b.afterMs ?? 5, () => fail('USER_BUSY', 'BUSY', 'sip:486'));
      case 'unavailable':
        return void botLater(b.afterMs ?? 5, () => fail('NORMAL_TEMPORARY_FAILURE', 'NORMAL_TEMPORARY_FAILURE', 'sip:503'));
      case 'no-answer':
        return;
    }
  }

  private botAnswered(ch: FsChannel, running: RunningApp, hangupAfterMs?: number, refer?: { afterMs: number; to: string }): void {
    const bot = ch.bot!;
    bot.timers.forEach(clearTimeout);
    bot.state = 'answered';
    this.setVar(ch, 'originate_disposition', 'SUCCESS');
    this.setVar(ch, 'DIALSTATUS', 'SUCCESS');
    this.setVar(ch, 'bridge_uuid', bot.uuid);
    this.setVar(ch, 'bridge_to', bot.uuid); // while bridged only (switch_ivr_bridge.c clears it when the bridge ends)
    this.emitEvent(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE', otherLeg(ch, bot));
    this.publishInbound(eventHeaders(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE', otherLeg(ch, bot)));
    // bridge_pre_execute_aleg_app runs once the bridge is up, after CHANNEL_BRIDGE, as an app (h1, h7).
    const hook = ch.vars.get('bridge_pre_execute_aleg_app');
    if (hook === 'multiset' || hook === 'set') {
      const data = ch.vars.get('bridge_pre_execute_aleg_data') ?? '';
      const app = { app: hook, arg: data, uuid: randomUUID() };
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders(app));
      for (const pair of hook === 'set' ? [data] : data.split(' ').filter(Boolean)) {
        const [name = '', ...value] = pair.split('=');
        this.setVar(ch, name, value.join('='));
      }
      this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(app, '_none_'));
    }
    if (hangupAfterMs !== undefined) callTimer(bot.timers, hangupAfterMs, () => this.botHungUp(ch, running));
    if (refer) callTimer(bot.timers, refer.afterMs, () => this.botRefers(ch, running, refer.to));
  }

  /** a3: the bot's BYE unbridges; the caller stays parked under the socket's control. */
  protected botHungUp(ch: FsChannel, running: RunningApp): void {
    if (ch.bot?.state !== 'answered') return;
    this.endBot(ch);
    this.setVar(ch, 'bridge_hangup_cause', 'NORMAL_CLEARING');
    this.setVar(ch, 'last_bridge_hangup_cause', 'NORMAL_CLEARING');
    this.setVar(ch, 'last_bridge_proto_specific_hangup_cause', 'sip:200'); // h3, h7: the bot's BYE
    this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    this.complete(ch, running);
    if (running.inDialplan) return this.afterBotBridge(ch);
    // e2: with the socket gone, the socket app returns: the shipped dialplan goes on after it.
    if (!ch.session || ch.session.closed) {
      if (ch.state === 'socket' && ch.dialplanContinues) {
        ch.state = 'bot'; // `bridge ${twin_bot_dial}` (empty: nothing) and the transfer after it
        return this.afterSocketStep(ch);
      }
      this.afterHandedOverBotHangup(ch);
    } else this.runQueue(ch);
  }

  protected endBot(ch: FsChannel): void {
    if (!ch.bot || ch.bot.state === 'gone') return;
    ch.bot.timers.forEach(clearTimeout);
    ch.bot.state = 'gone';
    ch.vars.delete('bridge_to');
  }

  /**
   * A display name with `\"` inherited by the bot leg: FreeSWITCH logs "Error creating HANDLE!",
   * sends no INVITE, and the bridge fails with DESTINATION_OUT_OF_ORDER / INVALIDARGS and no SIP
   * code (second recording, README). A gateway that does not exist fails the same way before any
   * INVITE, with INVALID_GATEWAY (mod_sofia's sofia_outgoing_channel; DIALSTATUS stays INVALIDARGS,
   * as switch_ivr_originate sets it before the leg is made).
   */
  private unbuildableLeg(ch: FsChannel, app: RunningApp, cause = 'DESTINATION_OUT_OF_ORDER'): void {
    ch.running = { ...app };
    this.later(ch, () => {
      for (const [name, value] of [['originate_disposition', cause], ['DIALSTATUS', 'INVALIDARGS'],
        ['originate_failed_cause', cause], ['last_bridge_hangup_cause', cause]] as const) {
        this.setVar(ch, name, value);
      }
      if (ch.vars.get('continue_on_fail') === 'true') {
        this.complete(ch, app);
        if (app.inDialplan) this.afterBotBridge(ch);
        else this.runQueue(ch);
      } else {
        this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
      }
    });
  }

  private makeInvite(ch: FsChannel, endpoint: string, vars: Map<string, string>): SimInvite {
    const headers: [string, string][] = [];
    const add = (name: string, value: string) => {
      const m = /^sip_h_(.+)$/.exec(name.replace(/^nolocal:/, ''));
      if (m) headers.push([m[1]!, value]);
    };
    for (const [n, v] of ch.vars) add(n, v);
    for (const [n, v] of vars) add(n, v);
    const gateway = /^sofia\/gateway\/([^/]+)\/(.+)$/.exec(endpoint);
    const direct = /^sofia\/[^/]+\/(?:sips?:)?(.+)$/.exec(endpoint);
    const requestUri = gateway
      ? `sip:${gateway[2]}@${this.gateways.get(gateway[1]!) ?? '127.0.0.1:5072'}`
      : `sip:${direct?.[1] ?? endpoint}`;
    const identity = {
      name: vars.get('origination_caller_id_name') ?? ch.caller.name,
      number: vars.get('origination_caller_id_number') ?? ch.caller.number,
    };
    const from = fromHeader(identity);
    // Remote-Party-ID is built from the number as it is, CR LF included (second recording, README).
    const remotePartyId = `"${identity.name}" <sip:${identity.number}@127.0.0.1>`;
    const lines = [
      `INVITE ${requestUri} SIP/2.0`, 'Via: SIP/2.0/UDP 127.0.0.1:5090;rport;branch=z9hG4bK' + ch.uuid.slice(0, 8),
      'Max-Forwards: 69', `From: ${from};tag=${ch.uuid.slice(-8)}`, `To: <${requestUri}>`, `Call-ID: ${randomUUID()}`,
      'CSeq: 1 INVITE', gateway ? `Contact: <sip:gw+${gateway[1]}@127.0.0.1:5090;transport=udp;gw=${gateway[1]}>` : 'Contact: <sip:mod_sofia@127.0.0.1:5090>',
      'User-Agent: FreeSWITCH-mod_sofia/1.10.12-release~64bit',
      'Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY',
      'Supported: timer, path, replaces', 'Allow-Events: talk, hold, conference, refer',
      'Content-Type: application/sdp', 'Content-Disposition: session', 'Content-Length: 0',
      // Quirk 13: the custom headers come after Content-Length.
      ...headers.map(([n, v]) => `${n}: ${v}`),
      'X-FS-Support: update_display,send_info', `Remote-Party-ID: ${remotePartyId};party=calling;screen=yes;privacy=off`, '', '',
    ];
    return { requestUri, from, headers, raw: lines.join('\r\n') };
  }

  // Done by the layers above: dialplan.ts, refer.ts.
  protected abstract afterBotBridge(ch: FsChannel): void;
  protected abstract afterHandedOverBotHangup(ch: FsChannel): void;
  protected abstract afterSocketStep(ch: FsChannel): void;
  protected abstract botRefers(ch: FsChannel, running: RunningApp, referTo: string): void;
}
