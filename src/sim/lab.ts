/**
 * A lab on loopback: the Twin simulator, one or both PBX simulators, and the real daemon configured
 * against them. Tests, the benchmark and `twin-connector demo` all start from here.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { Daemon } from '../daemon.js';
import type { CallOutcome } from '../core/types.js';
import { AriSimulator, type AriSimOptions } from './asterisk/ari-sim.js';
import { FreeSwitchSimulator, type FsSimOptions } from './freeswitch/esl-sim.js';
import { asteriskSim, freeswitchSim, type PbxKind, type PbxSim } from './pbx-sim.js';
import { TwinSimulator } from './twin-sim.js';

export interface LabOptions {
  clock?: Clock;
  log?: Logger;
  /** Which PBX simulators to run (default: Asterisk only). */
  pbx?: PbxKind | PbxKind[];
  /** Deep-merged over the lab's default config (objects merge, other values replace). */
  config?: Record<string, unknown>;
  ari?: AriSimOptions;
  freeswitch?: FsSimOptions;
}

export class Lab {
  readonly outcomes: CallOutcome[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];

  private constructor(
    readonly twin: TwinSimulator,
    private readonly sims: { ari?: AriSimulator; fs?: FreeSwitchSimulator },
    readonly daemon: Daemon,
    readonly config: Config,
  ) {
    daemon.on('outcome', (o: CallOutcome) => {
      this.outcomes.push(o);
      this.waiters = this.waiters.filter((w) => (this.outcomes.length >= w.count ? (w.resolve(), false) : true));
    });
  }

  static async start(options: LabOptions = {}): Promise<Lab> {
    const kinds = new Set([options.pbx ?? 'asterisk'].flat());
    const twin = new TwinSimulator();
    const ari = kinds.has('asterisk') ? new AriSimulator(options.ari) : undefined;
    const fs = kinds.has('freeswitch')
      ? new FreeSwitchSimulator({ gateways: { twin: '127.0.0.1:5070' }, ...options.freeswitch }) : undefined;
    await Promise.all([twin.start(), ari?.start(), fs?.start()]);
    const config = parseConfig(merge(labConfig(twin, ari, fs), options.config ?? {}), {});
    const daemon = new Daemon(config, { clock: options.clock, log: options.log ?? silentLogger });
    try {
      await daemon.start();
    } catch (err) {
      await daemon.stop();
      await Promise.all([twin.stop(), ari?.stop(), fs?.stop()]);
      throw err;
    }
    if (fs && daemon.freeswitch) fs.socketTarget = { host: '127.0.0.1', port: daemon.freeswitch.listenPort };
    return new Lab(twin, { ari, fs }, daemon, config);
  }

  get ari(): AriSimulator {
    if (!this.sims.ari) throw new Error('this lab runs no Asterisk simulator');
    return this.sims.ari;
  }

  get fs(): FreeSwitchSimulator {
    if (!this.sims.fs) throw new Error('this lab runs no FreeSWITCH simulator');
    return this.sims.fs;
  }

  /** The PBX simulator of that kind, or the only one, behind the common face. */
  pbx(kind?: PbxKind): PbxSim {
    const chosen = kind ?? (this.sims.ari ? 'asterisk' : 'freeswitch');
    return chosen === 'asterisk'
      ? asteriskSim(this.ari, this.config.asterisk?.device_state)
      : freeswitchSim(this.fs, this.config.freeswitch?.trunk_variable);
  }

  /** Resolves once `count` outcomes in total have been reported. */
  outcomesReached(count: number): Promise<CallOutcome[]> {
    if (this.outcomes.length >= count) return Promise.resolve(this.outcomes);
    return new Promise((resolve) => this.waiters.push({ count, resolve: () => resolve(this.outcomes) }));
  }

  /** The outcome of one caller channel, once it has left the product. */
  async outcomeOf(callId: string): Promise<CallOutcome> {
    for (;;) {
      const found = this.outcomes.find((o) => o.callId === callId);
      if (found) return found;
      await this.outcomesReached(this.outcomes.length + 1);
    }
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
    await Promise.all([this.twin.stop(), this.sims.ari?.stop(), this.sims.fs?.stop()]);
    if (isLabStateDir(this.config.state.dir)) rmSync(this.config.state.dir, { recursive: true, force: true });
  }
}

export function labConfig(twin: TwinSimulator, ari?: AriSimulator, fs?: FreeSwitchSimulator): Record<string, unknown> {
  return {
    log: { level: 'silent' },
    twin: {
      iam_url: twin.url,
      cis_url: twin.url,
      email: twin.email,
      password: twin.password,
      warmup_timeout_ms: 2000,
      sip: { uri: 'sip:twinbot@127.0.0.1:5070', headers: { 'X-TWIN-CallId': '{twin_id}', 'X-TWIN-ClientCallId': '{call_id}' } },
    },
    ...(ari ? { asterisk: { url: ari.url, username: ari.username, password: ari.password, app: 'twin', bot_answer_timeout_s: 30 } } : {}),
    ...(fs ? { freeswitch: { listen_port: 0, esl_port: fs.port, esl_password: fs.password, bot_answer_timeout_s: 30 } } : {}),
    trunk: { cooldown_s: 180, max_concurrent_calls: 100, max_calls_per_second: 1000 },
    routes: { default: { bot: 'bot-default', fallback: { action: 'hangup', cause: 16 } } },
    // A journal of its own (created by the daemon that uses it): never the machine's /var/lib/twin-connector, never another lab's.
    state: { dir: join(tmpdir(), `${LAB_STATE_PREFIX}${randomUUID()}`) },
  };
}

const LAB_STATE_PREFIX = 'twin-lab-state-';

function isLabStateDir(dir: string): boolean {
  return dir.startsWith(join(tmpdir(), LAB_STATE_PREFIX));
}

/** Plain-object deep merge: `over` wins; arrays and scalars are replaced. */
export function merge(base: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? merge(b, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
