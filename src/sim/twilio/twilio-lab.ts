/**
 * A lab for Twilio numbers on loopback: the Twin simulator, the Twilio stand-in, and the real
 * daemon with a `twilio:` section. Twilio reaches the product through a public URL; the stand-in
 * plays the reverse proxy that maps it to the product's local port.
 */
import { rmSync } from 'node:fs';
import type { Clock } from '../../clock.js';
import { parseConfig } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import type { CallOutcome } from '../../core/types.js';
import { Daemon } from '../../daemon.js';
import { silentLogger, type Logger } from '../../log.js';
import { labConfig, merge } from '../lab.js';
import { TwinSimulator } from '../twin-sim.js';
import { TwilioSimulator, type TwilioSimOptions } from './twilio-sim.js';
import { TwilioCallsApiSim } from './calls-api.js';

export const LAB_PUBLIC_URL = 'https://connector.example.test/twilio';

export interface TwilioLabOptions {
  clock?: Clock;
  log?: Logger;
  config?: Record<string, unknown>;
  twilio?: TwilioSimOptions;
}

export class TwilioLab {
  readonly outcomes: CallOutcome[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    readonly twin: TwinSimulator, readonly twilio: TwilioSimulator, readonly calls: TwilioCallsApiSim, readonly daemon: Daemon, readonly config: Config,
  ) {
    daemon.on('outcome', (o: CallOutcome) => {
      this.outcomes.push(o);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async start(options: TwilioLabOptions = {}): Promise<TwilioLab> {
    const twin = new TwinSimulator();
    const twilio = new TwilioSimulator({ msPerRingSecond: 10, ...options.twilio });
    const calls = new TwilioCallsApiSim(twilio);
    await twin.start();
    const apiUrl = await calls.start();
    const base = labConfig(twin);
    const twilioSection = {
      twilio: {
        account_sid: twilio.accountSid, auth_token: twilio.authToken, public_url: LAB_PUBLIC_URL, listen_port: 0, api_url: apiUrl, poll_interval_ms: 20,
      },
    };
    const config = parseConfig(merge(merge(base, twilioSection), options.config ?? {}), {});
    const daemon = new Daemon(config, { clock: options.clock, log: options.log ?? silentLogger });
    try {
      await daemon.start();
    } catch (err) {
      await daemon.stop();
      await twin.stop();
      await calls.stop();
      throw err;
    }
    twilio.configureNumber(config.twilio!.public_url!, `http://127.0.0.1:${daemon.twilio!.port}`);
    return new TwilioLab(twin, twilio, calls, daemon, config);
  }

  /** The outcome of one call (by CallSid), once it has left the product. */
  async outcomeOf(callSid: string): Promise<CallOutcome> {
    for (;;) {
      const found = this.outcomes.find((o) => o.callId === callSid);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
    await this.calls.stop();
    await this.twin.stop();
    if (this.config.state.dir.includes('twin-lab-state-')) rmSync(this.config.state.dir, { recursive: true, force: true });
  }
}
