/**
 * The shipped dialplan-twin.xml and twin-after-socket.xml as the simulated FreeSWITCH runs them:
 * the trunk check before `socket`, what happens when `socket` returns (the bridge to
 * twin_bot_dial, then `transfer ${twin_next_step} XML twin-after-socket`: released, not_taken,
 * bot_failed), and the CUSTOM twin::* events those extensions fire.
 */
import { randomUUID } from 'node:crypto';
import { causeCode } from '../../core/q850.js';
import { freeswitchTrunkCheck } from '../shipped-dialplan.js';
import type { CallSpec, SimCall } from '../call-model.js';
import { eventHeaders, type FsChannel } from './channel.js';
import type { SocketMode } from './wire.js';
import { customEvent } from './inbound.js';
import { HangupAndTransfer } from './hangup-and-transfer.js';

export interface FsPlaceCall extends CallSpec {
  /** Whether the dialplan answered before `socket` (default true). */
  answered?: boolean;
  /** The dialplan's `socket`: `full` as shipped (static), or `async full` as before issue 20. */
  socket?: SocketMode;
  /** The caller hangs up before the dialplan reaches `socket` (a starved box): only the hang-up event is seen. */
  leavesBeforeSocket?: boolean;
}

export abstract class ShippedDialplan extends HangupAndTransfer {
  /** Dialplan contexts FreeSWITCH has loaded (the shipped ones unless a test removes them). */
  readonly dialplanContexts = new Set(['twin-after-socket', 'twin-transfers', 'twin-fallback']);
  /** Whether twin-after-socket has issue 20's `bot_failed` extension (the shipped file's); a test may take it away. */
  afterSocketHasBotFailed = true;
  readonly globals = new Map<string, string>();

  /** The shipped dialplan's checks before `socket` (twin-bot-throttled, twin-bot-overloaded), read from dialplan-twin.xml. */
  private readonly trunkChecks = [freeswitchTrunkCheck(), freeswitchTrunkCheck(undefined, 'twin-bot-overloaded')];

  /**
   * A caller whose dialplan runs `answer` (unless told not to), sets twin_* variables, then `socket`;
   * unless the shipped trunk check matches first and transfers it to the fallback.
   */
  placeCall(spec: FsPlaceCall = {}): SimCall {
    const check = this.trunkChecks.find((c) => c.skips(this.globals.get(c.name)));
    if (check) {
      const { vars, ...target } = check.fallback;
      return { id: randomUUID(), left: Promise.resolve({ kind: 'continued', ...target, vars: { ...vars } }), hangup: () => {} };
    }
    const vars = new Map(Object.entries(spec.hints ?? {}).map(([k, v]) => [`twin_${k}`, v]));
    vars.set('twin_next_step', 'not_taken');
    vars.set('twin_handover_us', String(Math.floor((Date.now() - (spec.handoverLagMs ?? 0)) * 1000)));
    const number = spec.number ?? '+15551230000';
    const mode = spec.socket ?? 'static';
    if (spec.leavesBeforeSocket) return this.leaveBeforeSocket(randomUUID(), { name: spec.name ?? 'Customer', number }, vars);
    return this.openChannel(randomUUID(), { name: spec.name ?? 'Customer', number }, spec.dialed ?? '100', vars,
      { ...this.socketTarget, mode, full: true }, spec.answered ?? true, false, true);
  }

  /**
   * The dialplan stops where the caller hung up: no `socket` ran, so no socket_host, and
   * CHANNEL_HANGUP_COMPLETE still carries twin_next_step=not_taken (recording h8).
   */
  private leaveBeforeSocket(uuid: string, caller: { name: string; number: string }, vars: Map<string, string>): SimCall {
    const ch: FsChannel = {
      uuid, name: `sofia/lab/${caller.number.replace(/[^A-Za-z0-9+*#._%-]/g, '')}@127.0.0.1:5082`, caller,
      dialed: '100', answered: true, state: 'hungup', vars, originated: false, dialplanContinues: true,
      queue: [], timers: [], created: Date.now(), seq: 0, earlyLingerNotice: false, finish: () => {},
    };
    this.publishInbound(eventHeaders(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING'));
    return { id: uuid, left: Promise.resolve({ kind: 'hungup-by-caller', vars: Object.fromEntries(vars) }), hangup: () => {} };
  }

  /**
   * `socket` returned with the caller still up: a uuid_transfer sent meanwhile takes the caller (p9);
   * else the shipped dialplan's `transfer ${twin_next_step} XML twin-after-socket` (h1); a channel
   * without that line (an originated one) is hung up.
   */
  protected socketReturned(ch: FsChannel): void {
    if (ch.state !== 'socket') return;
    if (ch.pendingHangup) return this.appHangup(ch, ch.pendingHangup);
    if (ch.pendingTransfer) return this.transfer(ch, ch.pendingTransfer.extension, ch.pendingTransfer.context);
    if (ch.dialplanContinues) {
      // The shipped dialplan's `bridge ${twin_bot_dial}` (issue 20; empty: it does nothing).
      if (ch.session?.mode === 'static' && ch.vars.get('twin_bot_dial')) return this.dialplanBridge(ch);
      return this.afterSocketStep(ch);
    }
    if (ch.vars.get('twin_next_step') === 'released') return this.afterHandedOverBotHangup(ch);
    this.hangup(ch, 'NORMAL_CLEARING', { kind: 'hungup-by-app', reasonCode: '16', reason: 'socket closed', vars: {} });
  }

  /**
   * The `socket` app returns once the app it was running ends after the connection is lost: the
   * shipped dialplan then goes on to its fallback (recording s10-sigkill: an endless ringback
   * never ends, so the caller rang until they gave up).
   */
  protected socketAppReturned(ch: FsChannel): void {
    if (ch.state !== 'socket') return;
    if (ch.dialplanContinues) return this.socketReturned(ch);
    this.afterSocketFailed(ch, { socket_lost: 'true' });
  }

  /** The dialplan's `bridge ${twin_bot_dial}` after `socket` (the caller handed back, h1). */
  private dialplanBridge(ch: FsChannel): void {
    ch.state = 'bot';
    this.bridge(ch, { app: 'bridge', arg: ch.vars.get('twin_bot_dial') ?? '', uuid: randomUUID(), inDialplan: true });
  }

  /** `transfer ${twin_next_step} XML twin-after-socket`: its extensions as shipped. */
  protected afterSocketStep(ch: FsChannel): void {
    const step = ch.vars.get('twin_next_step') ?? '';
    if (step === 'released') return this.afterHandedOverBotHangup(ch);
    if (step === 'not_taken') return this.afterSocketFailed(ch, { socket_lost: 'true' });
    if (step === 'bot_failed' && this.afterSocketHasBotFailed) return this.botFailedExtension(ch);
    // No such extension in twin-after-socket: FreeSWITCH hangs the caller up.
    this.hangup(ch, 'NO_ROUTE_DESTINATION', { kind: 'hungup-by-app', reasonCode: '3', reason: `no extension ${step}`, vars: {} });
  }

  /** A `transfer` to <extension> XML twin-after-socket: FreeSWITCH adds it to transfer_history (h1). */
  private enterExtension(ch: FsChannel, extension: string): void {
    const entry = `${Math.floor(Date.now() / 1000)}:${randomUUID()}:bl_xfer:${extension}/twin-after-socket/XML`;
    const history = ch.vars.get('transfer_history');
    this.setVar(ch, 'transfer_history', history ? `${history},${entry}` : entry);
    ch.profile = { destination: extension, context: 'twin-after-socket' };
  }

  /** The dialplan's bridge returned: `transfer ${twin_next_step} XML twin-after-socket`. */
  protected afterBotBridge(ch: FsChannel): void {
    if (ch.state !== 'bot') return;
    this.afterSocketStep(ch);
  }

  /**
   * twin-after-socket's `bot_failed` (h2): TWIN_STATUS=BOT_FAILED, CUSTOM twin::bot_failed with the
   * caller's variables (originate_disposition, the SIP cause), then the route's fallback (twin_fb_*).
   */
  private botFailedExtension(ch: FsChannel): void {
    this.enterExtension(ch, 'bot_failed');
    ch.vars.delete('force_transfer_context');
    ch.vars.delete('bridge_pre_execute_aleg_app');
    this.setVar(ch, 'TWIN_STATUS', 'BOT_FAILED');
    this.publishInbound(eventHeaders(ch, 'CUSTOM', 'CS_EXECUTE', [['Event-Subclass', 'twin::bot_failed']]));
    ch.state = 'transferred';
    if (ch.vars.get('twin_fb_action') === 'continue') {
      return this.continueTo(ch, ch.vars.get('twin_fb_extension') ?? '', ch.vars.get('twin_fb_context') ?? '');
    }
    const cause = ch.vars.get('twin_fb_cause') ?? 'NORMAL_CLEARING';
    this.end(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
  }

  /** A transferred caller goes on in other dialplan, which answers, plays a prompt and hangs up (as the fallbacks do). */
  protected continueTo(ch: FsChannel, extension: string, context: string): void {
    ch.finish({ kind: 'continued', context, extension, priority: 1, vars: Object.fromEntries(ch.vars) });
    this.later(ch, () => this.end(ch, 'NORMAL_CLEARING'), 10);
  }

  /**
   * The shipped dialplan's lines after `socket`: fire CUSTOM twin::not_taken (the product counts
   * it over its inbound connection), then the fallback.
   */
  protected afterSocketFailed(ch: FsChannel, vars: Record<string, string>): void {
    this.publishInbound(customEvent('twin::not_taken', ch.uuid));
    this.end(ch, 'NORMAL_CLEARING', { kind: 'app-unavailable', vars });
  }

  /**
   * `socket` returned after the bot hung up a call the product had handed over (its socket closed
   * while bridged, e2): the shipped twin-after-socket `released` extension fires twin::bot_hangup
   * and runs the route's after_bot_hangup from the twin_after_* variables.
   */
  protected afterHandedOverBotHangup(ch: FsChannel): void {
    if (ch.vars.get('twin_next_step') !== 'released') return this.afterSocketFailed(ch, { socket_lost: 'true' });
    this.publishInbound(eventHeaders(ch, 'CUSTOM', 'CS_EXECUTE', [['Event-Subclass', 'twin::bot_hangup']]));
    if (ch.vars.get('twin_after_bot') === 'continue') {
      ch.vars.delete('force_transfer_context');
      ch.vars.delete('bridge_pre_execute_aleg_app');
      this.transfer(ch, ch.vars.get('twin_after_extension') ?? 's', ch.vars.get('twin_after_context') ?? 'default');
    } else {
      const cause = ch.vars.get('twin_after_cause') ?? 'NORMAL_CLEARING';
      this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
    }
  }
}
