/**
 * What the real-PBX runners share (run.ts, faults.ts): the per-PBX lock, the tool check, SIPp's
 * media ports, caller numbers, waiting for the PBX to drain, and stopping children on a signal.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Options } from './args.js';
import { isAlive } from './cpu.js';
import { sleep, type PbxControl } from './pbx.js';

/**
 * SIPp's media port for a SIPp bound to a SIP port: outside the PBXs' RTP ranges (Asterisk's default
 * 10000-20000, FreeSWITCH's 16384-32768, the lab's 20000-29999: a PBX that cannot bind its RTP port
 * fails the call with 488) and above Linux's ephemeral ports (32768-60999); derived from the SIP port
 * (4 apart: SIPp may bind the next ports too) so an Asterisk and a FreeSWITCH run can go at once.
 */
export function mediaPort(sipPort: number): number {
  return 61000 + (sipPort % 1000) * 4;
}

/** Caller numbers +1555NNNNNNN, each used once per benchmark so calls never get mixed up. */
export class NumberPool {
  private next = 1;
  take(n: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(`+1555${String(this.next++).padStart(7, '0')}`);
    return out;
  }
}

export class LockTakenError extends Error {}

/**
 * One benchmark per PBX at a time: two would share the bot's and caller's ports, the Stasis app
 * and the dialplan's globals, and measure each other's calls. `waitS` > 0: wait that long for the
 * holder to finish (polling every 5 s) instead of failing at once.
 */
export async function lockPbx(o: Options, waitS = 0, onWait?: (holder: number) => void): Promise<() => void> {
  const file = join(tmpdir(), `twin-real-pbx-${o.pbx}-${o.sipPort}.lock`);
  const deadline = Date.now() + waitS * 1000;
  let told = false;
  for (;;) {
    try {
      return tryLock(file);
    } catch (err) {
      if (!(err instanceof LockTakenError) || Date.now() >= deadline) throw err;
      if (!told) onWait?.(Number(/pid (\d+)/.exec(err.message)?.[1] ?? 0));
      told = true;
      await sleep(5000);
    }
  }
}

function tryLock(file: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch {
      let holder = 0;
      try { holder = Number(readFileSync(file, 'utf8').trim()); } catch { /* gone meanwhile */ }
      if (holder > 0 && isAlive(holder)) throw new LockTakenError(`another real-PBX benchmark (pid ${holder}) is running against this PBX; wait for it (lock ${file})`);
      rmSync(file, { force: true }); // its runner died without cleaning up
    }
  }
  throw new Error(`cannot take the lock ${file}`);
}

export function checkTools(): void {
  for (const [tool, args, pkg] of [['sipp', ['-v'], 'sip-tester'], ['tcpdump', ['--version'], 'tcpdump']] as const) {
    const r = spawnSync(tool, [...args], { stdio: 'ignore' });
    if (r.error) throw new Error(`${tool} not found: apt-get install ${pkg}`);
  }
}

/** Between runs the PBX must be empty, or one run's hang-ups would be billed to the next. */
export async function waitDrained(pbx: PbxControl, drainS: number): Promise<void> {
  const deadline = Date.now() + drainS * 1000;
  let left = await pbx.leftovers();
  while (left.channels > 0 && Date.now() < deadline) {
    await sleep(250);
    left = await pbx.leftovers();
  }
  if (left.channels > 0) process.stdout.write(`warning: ${left.channels} channels still up after ${drainS} s; going on\n`);
}

/** Children to stop when the runner is interrupted or fails. */
export const cleanups = new Set<() => Promise<void>>();

export async function stopAll(): Promise<void> {
  await Promise.allSettled([...cleanups].map((stop) => stop()));
}

/** SIGINT/SIGTERM stop SIPp, tcpdump and the product, then exit 130. */
export function stopChildrenOnSignal(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping SIPp and the product\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}
