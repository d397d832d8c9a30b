/**
 * A caller leaving the socket: transferred elsewhere in the dialplan (uuid_transfer, the transfer
 * app), or hung up, with the event order recorded (a1, b1, c1) and, under a static socket, the
 * linger notice last.
 */
import { causeCode } from '../../core/q850.js';
import type { CallerResult } from '../call-model.js';
import { eventHeaders, type FsChannel } from './channel.js';
import { lingerNotice } from './wire.js';
import { BotBridge } from './bot-bridge.js';

export abstract class HangupAndTransfer extends BotBridge {
  protected transfer(ch: FsChannel, extension: string, context: string): void {
    if (ch.state !== 'socket' && ch.state !== 'bot') return;
    this.interruptRunning(ch);
    this.endBot(ch);
    ch.queue = [];
    ch.state = 'transferred';
    this.socketAppEnded(ch);
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_ROUTING');
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_EXECUTE');
    // The fallback extension answers, plays a prompt and hangs up; its events still reach the socket (b3).
    this.continueTo(ch, extension, context);
  }

  protected appHangup(ch: FsChannel, cause: string): void {
    this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? cause), reason: cause, vars: {} });
  }

  /** Ends a channel under our socket, with the recorded event order (a1, b1, c1). */
  protected hangup(ch: FsChannel, cause: string, result: CallerResult): void {
    if (ch.state !== 'socket' && ch.state !== 'bot') {
      // A caller elsewhere in the dialplan: `left` was settled already, unless a transfer still rang.
      if (ch.state === 'transferred') this.end(ch, cause, result);
      return;
    }
    this.end(ch, cause, result);
  }

  protected end(ch: FsChannel, cause: string, result?: CallerResult): void {
    if (ch.state === 'hungup') return;
    const underSocket = ch.state === 'socket';
    ch.state = 'hungup';
    this.setVar(ch, 'hangup_cause', cause);
    this.emitEvent(ch, 'CHANNEL_HANGUP', 'CS_EXECUTE');
    const session = ch.session;
    const lingering = session !== undefined && !session.closed && session.linger !== null;
    // Static: the caller's thread is the socket's; it says the channel is down (linger notice) after
    // the events it has, and nothing after: `socket` returns, and the rest fires once it has (h7).
    if (session?.mode === 'static' && underSocket) return this.endUnderStaticSocket(ch, result);
    if (lingering && ch.earlyLingerNotice) this.writeOrHold(ch, lingerNotice(ch.uuid, ch.name, session.linger!));
    if (ch.bot?.state === 'answered') this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    if (ch.bot?.state === 'ringing') this.setVar(ch, 'originate_disposition', 'ORIGINATOR_CANCEL');
    this.endBot(ch);
    this.interruptRunning(ch);
    if (underSocket) this.socketAppEnded(ch);
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_HANGUP');
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_REPORTING');
    this.emitEvent(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING');
    this.publishInbound(eventHeaders(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING'));
    if (lingering && !ch.earlyLingerNotice) this.writeOrHold(ch, lingerNotice(ch.uuid, ch.name, session.linger!));
    this.releaseStaticReply(ch);
    if (lingering && session.linger! > 0) this.later(ch, () => this.closeOutbound(ch, true), session.linger! * 1000);
    if (session && !lingering) this.closeOutbound(ch, true);
    this.clearTimers(ch);
    if (result) ch.finish({ ...result, vars: { ...Object.fromEntries(ch.vars), ...result.vars } } as CallerResult);
    this.forgetIfDone(ch);
  }

  private endUnderStaticSocket(ch: FsChannel, result?: CallerResult): void {
    const session = ch.session!;
    const lingering = !session.closed && session.linger !== null;
    if (ch.bot?.state === 'answered') this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    if (ch.bot?.state === 'ringing') this.setVar(ch, 'originate_disposition', 'ORIGINATOR_CANCEL');
    this.endBot(ch);
    this.interruptRunning(ch);
    this.releaseStaticReply(ch);
    this.publishInbound(eventHeaders(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING'));
    if (lingering) {
      this.write(ch, lingerNotice(ch.uuid, ch.name, session.linger!));
      if (session.linger! > 0) this.later(ch, () => this.closeOutbound(ch, true), session.linger! * 1000);
    } else this.closeOutbound(ch, true);
    this.clearTimers(ch);
    if (result) ch.finish({ ...result, vars: { ...Object.fromEntries(ch.vars), ...result.vars } } as CallerResult);
    this.forgetIfDone(ch);
  }

  // Done by the layers above: dialplan.ts.
  protected abstract continueTo(ch: FsChannel, extension: string, context: string): void;
}
