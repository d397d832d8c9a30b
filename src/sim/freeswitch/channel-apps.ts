/**
 * The dialplan applications a sendmsg runs on the caller's channel, one at a time in order:
 * multiset, set/export, answer, playback (a looping tone or MOH holds the queue until uuid_break),
 * bridge, transfer, hangup; anything else completes with -ERR.
 */
import { appHeaders, type FsChannel, type RunningApp } from './channel.js';
import { SocketApp } from './socket-app.js';

/** Apps uuid_break ends. */
export const BREAKABLE = new Set(['playback', 'sleep', 'park']);

export abstract class ChannelApps extends SocketApp {
  protected runQueue(ch: FsChannel): void {
    while (!ch.running && ch.state === 'socket') {
      const next = ch.queue.shift();
      if (!next) return;
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders(next));
      this.setVar(ch, 'current_application', next.app);
      this.startApp(ch, next);
    }
  }

  private startApp(ch: FsChannel, app: { app: string; arg: string; uuid: string }): void {
    switch (app.app) {
      case 'multiset': {
        // `^^<d>a=b<d>c=d`: split on <d> (else on spaces); values kept as they are; empty = unset.
        const custom = app.arg.startsWith('^^') && app.arg.length > 2;
        const pairs = custom ? app.arg.slice(3).split(app.arg[2]!) : app.arg.split(' ');
        for (const pair of pairs.filter(Boolean)) {
          const [name = '', ...value] = pair.split('=');
          if (value.join('=') === '') ch.vars.delete(name);
          else this.setVar(ch, name, value.join('='));
        }
        return this.complete(ch, app);
      }
      case 'set': case 'export': {
        const [name = '', ...value] = app.arg.replace(/^nolocal:/, '').split('=');
        this.setVar(ch, name, value.join('='));
        return this.complete(ch, app);
      }
      case 'answer':
        ch.answered = true;
        return this.complete(ch, app);
      case 'playback': return this.playback(ch, app);
      case 'bridge': return this.bridge(ch, app);
      case 'transfer': {
        this.complete(ch, app);
        const [extension = '', , context = 'default'] = app.arg.split(' ');
        return this.transfer(ch, extension, context);
      }
      case 'hangup': return this.appHangup(ch, app.arg || 'NORMAL_CLEARING');
      default:
        return this.complete(ch, app, '-ERR no such application');
    }
  }

  protected complete(ch: FsChannel, app: { app: string; arg: string; uuid: string }, response = '_none_'): void {
    if (ch.running?.uuid === app.uuid) ch.running = undefined;
    this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(app, response));
    this.releaseStaticReply(ch, app.uuid);
  }

  /** A looping tone or MOH plays until broken, unless the channel variable playback_timeout_sec bounds it. */
  private playback(ch: FsChannel, app: { app: string; arg: string; uuid: string }): void {
    if (ch.pendingBreak) {
      ch.pendingBreak = false;
      return this.complete(ch, app, 'FILE PLAYED');
    }
    const endless = /loops=-1/.test(app.arg) || app.arg.startsWith('local_stream://');
    const boundS = Number(ch.vars.get('playback_timeout_sec') ?? 0);
    ch.playing = app.arg.startsWith('local_stream://') ? 'moh' : 'ring';
    const running: RunningApp = { ...app, interrupt: () => { ch.playing = undefined; this.complete(ch, app, 'FILE PLAYED'); } };
    ch.running = running;
    const playMs = !endless ? 20 : boundS > 0 ? boundS * 1000 : undefined;
    if (playMs !== undefined) {
      this.later(ch, () => {
        if (ch.running !== running) return;
        running.interrupt!();
        if (ch.session?.closed) this.socketAppReturned(ch);
        else this.runQueue(ch);
      }, playMs);
    }
  }

  protected interruptRunning(ch: FsChannel): void {
    const running = ch.running;
    if (!running) return;
    ch.running = undefined;
    ch.playing = undefined;
    this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(running, '_none_'));
  }

  // Done by the layers above: bot-bridge.ts, dialplan.ts, hangup-and-transfer.ts.
  protected abstract bridge(ch: FsChannel, app: RunningApp): void;
  protected abstract socketAppReturned(ch: FsChannel): void;
  protected abstract transfer(ch: FsChannel, extension: string, context: string): void;
}
