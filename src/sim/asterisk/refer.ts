/**
 * What the simulated Asterisk does when a bot sends a REFER (recordings refer-ari-only,
 * refer-ari-only-decline, refer-core): ari-only handling tells the app, core handling transfers by
 * itself (a Local channel takes the bot's place in the bridge), an unknown extension is refused
 * with NOTIFY 404; in the bot_leg dialplan the REFER moves the caller out of Dial().
 */
import { bridgeJson, channelJson, inStasis, type SimChannel, type SimRefer } from './model.js';
import { AriDialplan } from './dialplan.js';

/** NOTIFY sipfrag codes for the app's transfer_progress states (recordings refer-ari-only*). */
const PROGRESS_NOTIFY: Record<string, number | undefined> = {
  channel_progress: undefined, channel_answered: 200, channel_declined: 603, channel_unavailable: 503,
};

export abstract class AriRefer extends AriDialplan {
  /** Every REFER a bot sent, in order. */
  readonly refers: SimRefer[] = [];

  /** The bot leg's far end sends a REFER (a test's way to make a bot transfer, again). */
  botRefers(channelId: string, to: string): void {
    const bot = this.channels.get(channelId);
    if (bot) this.referFromBot(bot, to);
  }

  /**
   * The bot leg (in our bridge) sends REFER. With PJSIP_TRANSFER_HANDLING()=ari-only written on it,
   * Asterisk only tells the app (ChannelTransfer, no state) and NOTIFYs 100; otherwise it transfers
   * by itself within TRANSFER_CONTEXT (else the endpoint's context); an extension that does not
   * exist there gets 202 and NOTIFYs 100, 404 (real Asterisk 22.10.1: "target does not exist"), and nothing moves.
   */
  protected referFromBot(bot: SimChannel, to: string): void {
    if (!this.channels.has(bot.id)) return;
    const caller = this.channels.get(bot.callerChannelId ?? '');
    const refer: SimRefer = { to, handling: 'refused', notifies: [], callerId: caller?.id };
    bot.refer = refer;
    this.refers.push(refer);
    if (bot.vars.get('PJSIP_TRANSFER_HANDLING()') === 'ari-only' && inStasis(bot)) {
      refer.handling = 'ari';
      refer.notifies.push(100);
      return this.emitChannelTransfer(bot, undefined);
    }
    const context = bot.vars.get('TRANSFER_CONTEXT') ?? 'from-twin';
    if (!this.transferExtensionExists(context, to)) return void refer.notifies.push(100, 404); // nothing moves
    refer.handling = 'core';
    refer.notifies.push(100, 200); // at once, before anyone answers (refer-core)
    this.coreBlindTransfer(bot, context, to);
  }

  private emitChannelTransfer(bot: SimChannel, state: string | undefined): void {
    const caller = this.channels.get(bot.callerChannelId ?? '');
    const bridge = bot.bridgeId ? this.bridges.get(bot.bridgeId) : undefined;
    this.emit(bot.app, 'ChannelTransfer', {
      ...(state ? { state } : {}),
      refer_to: { requested_destination: { destination: bot.refer?.to ?? '' } },
      referred_by: {
        source_channel: channelJson(bot),
        ...(caller ? { connected_channel: channelJson(caller) } : {}),
        ...(bridge ? { bridge: bridgeJson(bridge) } : {}),
      },
    });
  }

  /** POST /channels/{bot}/transfer_progress: the NOTIFY the bot gets, and the event echoing the state. */
  protected transferProgress(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    const state = q.get('states') ?? '';
    if (!(state in PROGRESS_NOTIFY)) return [400, { message: 'Invalid states' }];
    const code = PROGRESS_NOTIFY[state];
    if (code !== undefined) ch.refer?.notifies.push(code);
    this.afterReply.push(() => this.emitChannelTransfer(ch, state));
    return [204, undefined];
  }

  /**
   * Asterisk's own blind transfer out of a Stasis bridge (refer-core): a Local/<to>@<context> pair;
   * its ;1 takes the bot's place in the bridge (StasisStart with replace_channel), its ;2 runs the
   * dialplan and rings the person. The bot stays up in the app, out of the bridge.
   */
  private coreBlindTransfer(bot: SimChannel, context: string, to: string): void {
    const id = this.nextId();
    const local = this.newChannel(id, `Local/${to}@${context}-${this.hexSeq()};1`, 'created', { name: '', number: '' });
    local.app = bot.app;
    local.dialplan = { context, exten: to, priority: 1, app_name: 'Stasis', app_data: bot.app ?? '' };
    local.endpoint = `Local/${to}@${context}`;
    this.channels.set(id, local);
    this.emit(local.app, 'StasisStart', { args: [], channel: channelJson(local), replace_channel: channelJson(bot) });
    const bridge = bot.bridgeId ? this.bridges.get(bot.bridgeId) : undefined;
    this.leaveBridge(bot);
    if (bridge) {
      local.bridgeId = bridge.id;
      bridge.channels.push(id);
      this.emit(local.app, 'ChannelEnteredBridge', { bridge: bridgeJson(bridge), channel: channelJson(local) });
    }
    this.emit(local.app, 'BridgeBlindTransfer', {
      channel: channelJson(bot), exten: to, context, result: 'Success', is_external: true, replace_channel: channelJson(local),
      ...(bridge ? { bridge: bridgeJson(bridge) } : {}),
    });
    this.ring(local, this.personBehaviour(context, to), this.options.transferRingTimeoutS ?? 20);
  }

  /**
   * bot_leg dialplan: the bot's REFER in Dial()'s own bridge moves the caller to TRANSFER_CONTEXT
   * (the pre-dial handler set it on the bot's channel), whose shipped [twin-transfers] entry sets
   * TWIN_TRANSFER_TARGET and sends the caller on to the person; the hangup handler reports it.
   */
  protected referInBotDial(caller: SimChannel, to: string): void {
    const dial = caller.botDial;
    if (!dial || !this.channels.has(caller.id)) return;
    const assignments = (caller.vars.get('TWIN_BOT') ?? '').split('^').slice(2);
    const context = assignments.find((a) => a.startsWith('TRANSFER_CONTEXT='))?.slice('TRANSFER_CONTEXT='.length) ?? 'from-twin';
    const refer: SimRefer = { to, handling: 'refused', notifies: [], callerId: caller.id };
    this.refers.push(refer);
    if (!this.transferExtensionExists(context, to)) return void refer.notifies.push(100, 404);
    refer.handling = 'core';
    refer.notifies.push(100, 200);
    dial.transferredTo = to;
    caller.vars.set('TWIN_TRANSFER_TARGET', to);
    caller.vars.set('TWIN_STATUS', 'TRANSFERRED');
  }
}
