/** CPU time of a process from /proc/<pid>/stat (utime + stime, all threads), and finding the PBX's pid. */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Fields after the ")" that ends the command name (which may contain spaces). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU milliseconds the process has used so far (10 ms resolution with the usual 100 Hz ticks). */
export function cpuMs(pid: number): number {
  const f = statFields(pid);
  // utime and stime are fields 14 and 15 of stat; f starts at field 3.
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks();
}

/** Resident memory of a process in MB (/proc/<pid>/status VmRSS). */
export function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return kb === undefined ? Number.NaN : Number(kb) / 1024;
}

export function isAlive(pid: number): boolean {
  try {
    statFields(pid);
    return true;
  } catch {
    return false;
  }
}

/**
 * The PBX daemon's pid. `pidof asterisk` also lists `asterisk -rx` remote consoles (the runner's own
 * CLI polls among them): skip those started with -r/-R/-x and take the oldest of the rest.
 */
export function findPbxPid(name: string): number {
  let out = '';
  try {
    out = execFileSync('pidof', [name], { encoding: 'utf8' });
  } catch {
    throw new Error(`pidof ${name} found no process: is the PBX running? (or give --pbx-pid)`);
  }
  const pids = out.trim().split(/\s+/).map(Number).filter((p) => p > 0 && !(name === 'asterisk' && isRemoteConsole(p)));
  const oldest = pids.sort((a, b) => startTime(a) - startTime(b))[0];
  if (oldest === undefined) throw new Error(`pidof ${name}: only remote consoles found; give --pbx-pid`);
  return oldest;
}

function isRemoteConsole(pid: number): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.some((a) => /^-[a-zA-Z]*[rRx]/.test(a) && !a.startsWith('--'));
  } catch {
    return true;
  }
}

function startTime(pid: number): number {
  try {
    return Number(statFields(pid)[19]);
  } catch {
    return Infinity;
  }
}
