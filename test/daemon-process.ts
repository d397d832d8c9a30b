/** The real daemon as a child process (`node --import tsx src/cli.ts run`), for restart and signal tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { stringify } from 'yaml';
import { AriSimulator } from '../src/sim/asterisk/ari-sim.js';
import { FreeSwitchSimulator } from '../src/sim/freeswitch/esl-sim.js';
import { labConfig } from '../src/sim/lab.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';

export interface DaemonProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

export function runDaemonProcess(configPath: string): DaemonProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

export { freePort } from '../src/sim/http-util.js';

/** Twin and Asterisk simulators in the test's process, started before and stopped after the file's tests. */
export function simulatorsForProcessTests(): { twin: TwinSimulator; ari: AriSimulator };
export function simulatorsForProcessTests(options: { freeswitch: true }): { twin: TwinSimulator; ari: AriSimulator; fs: FreeSwitchSimulator };
/** The simulators a test file shares, started before its tests and stopped after them. */
export function simulatorsForProcessTests(options: { freeswitch?: boolean } = {}): { twin: TwinSimulator; ari: AriSimulator; fs?: FreeSwitchSimulator } {
  const twin = new TwinSimulator();
  const ari = new AriSimulator();
  const fs = options.freeswitch ? new FreeSwitchSimulator() : undefined;
  beforeAll(async () => {
    await Promise.all([twin.start(), ari.start(), fs?.start()]);
  });
  afterAll(async () => {
    await Promise.all([twin.stop(), ari.stop(), fs?.stop()]);
  });
  return { twin, ari, fs };
}

/** A config file for the daemon process against these simulators, info-level logs (and a call journal folder of its own); `edit` adds to it. */
export function writeDaemonConfig(
  sims: { twin: TwinSimulator; ari?: AriSimulator; fs?: FreeSwitchSimulator }, edit: (config: Record<string, any>, dir: string) => void = () => {},
): { path: string; config: Record<string, any>; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'twin-daemon-'));
  const config = labConfig(sims.twin, sims.ari, sims.fs) as Record<string, any>;
  config.log = { level: 'info' };
  config.state = { dir: join(dir, 'state') }; // beside the config file: one journal for every run on it
  edit(config, dir);
  const path = join(dir, 'config.yaml');
  writeFileSync(path, stringify(config));
  return { path, config, dir };
}
