/**
 * Whether the PBX has the endpoint the bot leg is dialled through (Asterisk: the PJSIP endpoint of
 * asterisk.bot_endpoint; FreeSWITCH: the sofia gateway of freeswitch.bot_endpoint). Without it every
 * bot leg fails, but only after Twin has opened a session for the call: while it is missing, calls
 * go straight to their fallback without a warm-up. Checked at each (re)connection and every minute
 * (one request), so adding the endpoint to the PBX heals the product without a restart.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';

export type BotEndpointVerdict =
  | { kind: 'present'; what: string; state?: string }
  /** `reason`: one line in plain words, e.g. "Asterisk has no PJSIP endpoint 'twin' (…)". */
  | { kind: 'missing'; what: string; reason: string }
  /** The dial string names nothing the PBX can be asked about (e.g. a Local channel). */
  | { kind: 'unchecked'; why: string };

export const BOT_ENDPOINT_RECHECK_MS = 60_000;

export class BotEndpointWatch {
  /** While the PBX lacks the bot endpoint: why, for the calls' detail. Undefined when present or not known. */
  missing?: string;
  private loop?: AbortController;

  constructor(
    private readonly probe: () => Promise<BotEndpointVerdict>,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly everyMs = BOT_ENDPOINT_RECHECK_MS,
  ) {}

  /**
   * Asks the PBX. After a (re)connection a missing endpoint is logged every time; the periodic
   * checks log only a change. A PBX that cannot be asked just now leaves the last answer standing.
   */
  async check(atConnect: boolean): Promise<void> {
    let verdict: BotEndpointVerdict;
    try {
      verdict = await this.probe();
    } catch (err) {
      if (atConnect) this.log.warn({ err: (err as Error).message }, 'could not check the bot endpoint');
      return;
    }
    if (verdict.kind === 'unchecked') {
      if (atConnect) this.log.info(`bot endpoint not checked: ${verdict.why}`);
      this.missing = undefined;
    } else if (verdict.kind === 'missing') {
      if (atConnect || this.missing === undefined) {
        this.log.error({ botEndpoint: verdict.what }, `${verdict.reason}: calls go straight to their fallback (UNAVAILABLE) `
          + `without a Twin warm-up until it exists (checked again every ${Math.round(this.everyMs / 1000)} s)`);
      }
      this.missing = `bot endpoint missing: ${verdict.reason}`;
    } else {
      if (this.missing !== undefined) this.log.info({ botEndpoint: verdict.what }, `bot endpoint ${verdict.what} exists now: calls go to the bot again`);
      this.missing = undefined;
    }
  }

  /** Checks every `everyMs` on the clock until stop(). */
  start(): void {
    this.stop();
    const loop = (this.loop = new AbortController());
    void (async () => {
      for (;;) {
        await this.clock.sleep(this.everyMs, loop.signal);
        if (loop.signal.aborted) return;
        await this.check(false);
      }
    })();
  }

  stop(): void {
    this.loop?.abort();
    this.loop = undefined;
  }
}
