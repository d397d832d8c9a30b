import type { AsteriskConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Fallback, HoldKind, TwinStatus } from '../../core/types.js';
import type { AriRest } from './ari-rest.js';

/** What a caller in our Stasis app needs from the driver; each kind of call asks for more (AriCallHost). */
export interface StasisCallerHost {
  readonly rest: AriRest;
  readonly cfg: AsteriskConfig;
  readonly log: Logger;
}

/**
 * What both ways of reaching the bot share for a caller in our Stasis app: the hold during the
 * warm-up, TWIN_STATUS, and sending the caller on (hang up or continue in the dialplan).
 */
export abstract class StasisCaller<Host extends StasisCallerHost = StasisCallerHost> {
  readonly pbx = 'asterisk' as const;
  protected readonly abort = new AbortController();
  readonly ended = this.abort.signal;
  private holding: HoldKind = 'none';
  /** Every request to send the caller on failed: the driver keeps hanging it up (it is still in our app). */
  exitOwed = false;
  /** From its StasisStart's timestamp to our taking it (the driver's HandoverDelay). */
  handoverDelayMs?: number;
  /**
   * Answered before Stasis() (state Up). The shipped dialplan lets the caller's phone ring instead
   * (Ringing(): 180, ringback that costs Asterisk nothing): such a caller is answered when the bot
   * is, by the bot dialplan's Dial() or, in bridge mode, by us.
   */
  answeredByPbx = true;

  constructor(
    protected readonly host: Host,
    readonly id: string,
    readonly caller: string,
    readonly callerName: string,
    readonly dialed: string,
    readonly hints: Readonly<Record<string, string>>,
    readonly direction: 'inbound' | 'outbound' = 'inbound',
  ) {}

  async hold(kind: HoldKind): Promise<void> {
    this.holding = kind;
    // Stasis(…,ringback=dialplan): the dialplan's Playtones(ring) is playing already; no request.
    if (kind === 'ring' && this.hints.ringback === 'dialplan') return;
    if (kind === 'ring') await this.host.rest.ring(this.id);
    else if (kind === 'moh') await this.host.rest.startMoh(this.id, this.host.cfg.moh_class);
  }

  async setStatus(status: TwinStatus): Promise<void> {
    await this.host.rest.setVar(this.id, 'TWIN_STATUS', status);
  }

  /**
   * Sends the caller on. A status that could not be set must never keep a caller in our app: the
   * exit waits for its answer (the dialplan reads it after the exit) but not for its success.
   */
  async leave(action: Fallback, status: TwinStatus): Promise<void> {
    // Gone from our app (hung up): nothing to send on, and each request would only fail (404).
    if (this.ended.aborted) return;
    // Neither a hold that could not be stopped nor a status that could not be set keeps the caller here.
    const holdStopped = this.stopHold().then(() => undefined, (err: Error) => err);
    const statusSet = this.setStatus(status).then(() => undefined, (err: Error) => err);
    const [holdError, statusError] = await Promise.all([holdStopped, statusSet]);
    // A caller who hung up meanwhile (404) is no news: only other failures are logged.
    if (holdError && !isGone(holdError)) this.host.log.warn({ callId: this.id, err: holdError.message }, 'could not stop the hold');
    if (statusError && !isGone(statusError)) this.host.log.warn({ callId: this.id, err: statusError.message }, 'could not set TWIN_STATUS');
    await this.exit(action);
  }

  /**
   * The exit, tried twice; a continue that keeps failing becomes a hang-up, so the caller does not
   * sit in silence. When all fail, `exitOwed` tells the driver to keep hanging it up.
   */
  private async exit(action: Fallback): Promise<void> {
    const attempts: (() => Promise<unknown>)[] = [() => this.sendOn(action), () => this.sendOn(action)];
    if (action.action === 'continue') attempts.push(() => this.host.rest.hangup(this.id));
    let firstError: unknown;
    for (const attempt of attempts) {
      try {
        await attempt();
        return;
      } catch (err) {
        if (isGone(err) || this.ended.aborted) return; // the caller is gone already
        firstError ??= err;
      }
    }
    this.exitOwed = true;
    throw firstError;
  }

  private sendOn(action: Fallback): Promise<unknown> {
    if (action.action === 'hangup') return this.host.rest.hangup(this.id, action.cause);
    return this.host.rest.continueInDialplan(this.id, action.context, action.extension, action.priority);
  }

  /** What is on hold now (the bot dialplan stops a ring by itself: StopPlaytones()). */
  protected get holdKind(): HoldKind {
    return this.holding;
  }

  protected async stopHold(): Promise<void> {
    const kind = this.holding;
    this.holding = 'none';
    if (kind === 'ring') await this.host.rest.ringStop(this.id).catch(ignoreGone);
    else if (kind === 'moh') await this.host.rest.stopMoh(this.id).catch(ignoreGone);
  }
}

export function ignoreGone(err: unknown): void {
  if (isGone(err)) return;
  throw err;
}

/** ARI answered 404: the channel (or bridge) is gone already. */
export function isGone(err: unknown): boolean {
  return (err as { notFound?: boolean }).notFound === true;
}
