import type { Fallback, HoldKind, TwinStatus } from '../../core/types.js';
import type { AriCallHost } from './ari-call.js';

/**
 * What both ways of reaching the bot share for a caller in our Stasis app: the hold during the
 * warm-up, TWIN_STATUS, and sending the caller on (hang up or continue in the dialplan).
 */
export abstract class StasisCaller {
  readonly pbx = 'asterisk' as const;
  protected readonly abort = new AbortController();
  readonly ended = this.abort.signal;
  private holding: HoldKind = 'none';

  constructor(
    protected readonly host: AriCallHost,
    readonly id: string,
    readonly caller: string,
    readonly callerName: string,
    readonly dialed: string,
    readonly hints: Readonly<Record<string, string>>,
    readonly direction: 'inbound' | 'outbound' = 'inbound',
  ) {}

  async hold(kind: HoldKind): Promise<void> {
    this.holding = kind;
    if (kind === 'ring') await this.host.rest.ring(this.id);
    else if (kind === 'moh') await this.host.rest.startMoh(this.id, this.host.cfg.moh_class);
  }

  async setStatus(status: TwinStatus): Promise<void> {
    await this.host.rest.setVar(this.id, 'TWIN_STATUS', status);
  }

  /**
   * Sends the caller on. The exit does not wait for TWIN_STATUS: a status that could not be set
   * must never keep a caller in our app.
   */
  async leave(action: Fallback, status: TwinStatus): Promise<void> {
    const stopHold = this.stopHold();
    const statusSet = this.setStatus(status).then(() => undefined, (err: Error) => err);
    await stopHold;
    const statusError = await statusSet;
    if (action.action === 'hangup') await this.host.rest.hangup(this.id, action.cause);
    else await this.host.rest.continueInDialplan(this.id, action.context, action.extension, action.priority);
    if (statusError) this.host.log.warn({ callId: this.id, err: statusError.message }, 'could not set TWIN_STATUS');
  }

  protected async stopHold(): Promise<void> {
    const kind = this.holding;
    this.holding = 'none';
    if (kind === 'ring') await this.host.rest.ringStop(this.id).catch(ignoreGone);
    else if (kind === 'moh') await this.host.rest.stopMoh(this.id).catch(ignoreGone);
  }
}

export function ignoreGone(err: unknown): void {
  if ((err as { notFound?: boolean }).notFound) return;
  throw err;
}
