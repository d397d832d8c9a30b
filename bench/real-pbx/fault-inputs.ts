/**
 * What faults.ts reads besides the capture: the product's outcome lines, the bench dialplan's
 * fallback log lines (Asterisk), the product's trunk state over HTTP; and how it drops the
 * product's connections to the PBX.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { sleep } from './pbx.js';

const run = promisify(execFile);

/** Caller number → the statuses of its outcome lines, over every log file of the run (a restarted product writes a second one). */
export function readOutcomes(logFiles: string[]): Map<string, string[]> {
  const byCaller = new Map<string, string[]>();
  for (const file of logFiles) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.includes('"outcome"')) continue;
      let outcome: { caller?: string; status?: string } | undefined;
      try { outcome = (JSON.parse(line) as { outcome?: typeof outcome }).outcome; } catch { continue; }
      if (outcome?.caller === undefined) continue;
      byCaller.set(outcome.caller, [...(byCaller.get(outcome.caller) ?? []), outcome.status ?? '?']);
    }
  }
  return byCaller;
}

/**
 * A fallback line of the bench dialplan: Asterisk `twin-bench …: fallback TWIN_STATUS=… STASISSTATUS=…`,
 * FreeSWITCH `twin-connector did not take the call (TWIN_STATUS=…)` (the shipped twin-after-socket's not_taken,
 * which the bench extension 7400 uses; before issue 20 the bench dialplan logged `twin-bench product: the product …`).
 */
export interface FallbackLine {
  t: number;
  /** trunk-skip: the trunk check skipped the product; stasis-failed: no app / socket to take the call; product: the product sent it. */
  kind: 'trunk-skip' | 'stasis-failed' | 'product';
}

export function logSize(file: string): number {
  try { return statSync(file).size; } catch { return 0; }
}

/** The fallback lines the PBX logged since byte `from` of its log (local time stamps, ms or µs). */
export function readFallbackLines(file: string, from: number): FallbackLine[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file).subarray(from).toString('utf8');
  const out: FallbackLine[] = [];
  const at = (date: string, time: string) => new Date(`${date}T${time.slice(0, 12)}`).getTime();
  const asterisk = /^\[(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\].*twin-bench [\w-]+: fallback TWIN_STATUS=(\S*) STASISSTATUS=(\S*)/gm;
  for (const m of text.matchAll(asterisk)) {
    out.push({ t: at(m[1]!, m[2]!), kind: m[3] ? 'product' : m[4] === 'FAILED' ? 'stasis-failed' : 'trunk-skip' });
  }
  const freeswitch = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+).*(?:twin-bench product: the product|twin-connector) did not take the call \(TWIN_STATUS=([^)]*)\)/g;
  for (const m of text.matchAll(freeswitch)) out.push({ t: at(m[1]!, m[2]!), kind: m[3] ? 'product' : 'stasis-failed' });
  if (out.length === 0 && /fallback TWIN_STATUS=|did not take the call \(TWIN_STATUS=/.test(text)) {
    // Asterisk's default `[Dec  6 23:35:06]` has no year and no ms: every such call would count as "missing".
    console.warn(`${file} has fallback lines, but none with a time stamp like [2026-12-06 23:35:06.123]: `
      + 'set dateformat=%F %T.%3q in logger.conf [general] and run `logger reload`');
  }
  return out;
}

/** The product's trunk state (GET /v1/trunk) and readiness (GET /readyz) each time either changed; 'down' = no answer. */
export interface TrunkSample {
  t: number;
  trunk: string;
  ready: boolean;
  reasons: string[];
}

export class TrunkWatch {
  readonly samples: TrunkSample[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly base: string, private readonly everyMs = 200) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const started = Date.now();
      const [trunk, ready] = await Promise.all([this.get('/v1/trunk'), this.get('/readyz')]);
      const sample: TrunkSample = {
        t: started,
        trunk: (trunk?.state as string | undefined) ?? 'down',
        ready: ready?.ready === true,
        reasons: (ready?.reasons as string[] | undefined) ?? (ready ? [] : ['down']),
      };
      const last = this.samples[this.samples.length - 1];
      if (!last || last.trunk !== sample.trunk || last.ready !== sample.ready || last.reasons.join() !== sample.reasons.join()) this.samples.push(sample);
      await sleep(Math.max(0, this.everyMs - (Date.now() - started)));
    }
  }

  private async get(path: string): Promise<Record<string, unknown> | undefined> {
    try {
      const res = await fetch(`${this.base}${path}`, { signal: AbortSignal.timeout(1000) });
      return (await res.json()) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<TrunkSample[]> {
    this.stopped = true;
    await this.done;
    return this.samples;
  }
}

/**
 * When the trunk was normal again after the fault began: the last sample from `since` on that turned
 * it open and ready (undefined: it never left open and ready then; NaN: it was not back by the end).
 */
export function trunkBackAt(samples: TrunkSample[], since: number): number | undefined {
  const ok = (s: TrunkSample) => s.trunk === 'open' && s.ready;
  const after = samples.filter((s) => s.t >= since);
  if (after.every(ok)) return undefined;
  const last = after[after.length - 1]!;
  if (!ok(last)) return NaN;
  let i = after.length - 1;
  while (i > 0 && ok(after[i - 1]!)) i--;
  return after[i]!.t;
}

/**
 * Drops the product's TCP connections to the PBX's control port (ARI's HTTP server / ESL) from the
 * PBX's side (`ss -K`, a reset as a restarting HTTP server would give): the event websocket and the
 * REST keep-alive pool; the runner's own connections are left alone. Returns how many were dropped.
 */
export async function dropConnections(productPid: number, pbxPort: number): Promise<number> {
  const { stdout } = await run('ss', ['-tnpH', 'state', 'established', `( dport = :${pbxPort} )`]);
  const ports = stdout.split('\n').filter((l) => l.includes(`pid=${productPid},`))
    .map((l) => Number(/^\S+\s+\S+\s+\S+:(\d+)\s/.exec(l.trim())?.[1])).filter((p) => p > 0);
  if (ports.length === 0) return 0;
  const filter = `( sport = :${pbxPort} ) and ( ${ports.map((p) => `dport = :${p}`).join(' or ')} )`;
  await run('ss', ['-K', '-tnH', 'state', 'established', filter]);
  return ports.length;
}
