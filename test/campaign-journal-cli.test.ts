/**
 * The journal's guarantees through the real CLI: a second run on the same journal is refused (and
 * the lock is gone once the first ends, however it ends), and a journal that cannot grow (a file
 * size limit: EFBIG, the same path as a full disk) stops dialling at once with a plain message.
 * The journal does not depend on the PBX, so Asterisk's simulator stands for both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { AriSimulator } from '../src/sim/asterisk/ari-sim.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import { labConfig } from '../src/sim/lab.js';
import { waitFor } from './helpers.js';

const twin = new TwinSimulator();
const ari = new AriSimulator();
const children: ChildProcess[] = [];

beforeAll(async () => {
  await Promise.all([twin.start(), ari.start()]);
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  ari.subscriberBehaviour = () => ({ kind: 'answer', afterMs: 5 });
});
afterAll(async () => {
  await Promise.all([twin.stop(), ari.stop()]);
});

interface Run { child: ChildProcess; exited: Promise<number | null>; output: () => string }

/** The CLI's campaign command; `fileSizeLimitKiB` runs it under `ulimit -f` (node ignores SIGXFSZ: writes fail with EFBIG). */
function campaign(args: string[], fileSizeLimitKiB?: number): Run {
  const cli = [process.execPath, '--import', 'tsx', 'src/cli.ts', 'campaign', ...args];
  const child = fileSizeLimitKiB === undefined
    ? spawn(cli[0]!, cli.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    // tsx's cache would be written under the limit too
    : spawn('bash', ['-c', `ulimit -f ${fileSizeLimitKiB}; exec "$0" "$@"`, ...cli], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSX_DISABLE_CACHE: '1' } });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

function setUp(numbers: string[], outbound: Record<string, unknown>): { dir: string; csv: string; journal: string; args: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'twin-journal-cli-'));
  const config = labConfig(twin, ari, undefined) as Record<string, any>;
  config.outbound = { caller_id: '+12025550143', calls_per_second: 50, ...outbound };
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  const csv = join(dir, 'list.csv');
  writeFileSync(csv, `number,bot\n${numbers.map((n) => `${n},sales`).join('\n')}\n`);
  return { dir, csv, journal: `${csv}.journal`, args: [csv, '--config', join(dir, 'config.yaml'), '--results', join(dir, 'results.csv')] };
}

function numbers(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `+44207946${prefix}${String(i).padStart(2, '0')}`);
}

function readPid(path: string): number | undefined {
  return existsSync(path) ? Number(readFileSync(path, 'utf8')) : undefined;
}

function resultRows(dir: string): string[][] {
  return readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
}

describe.each(['SIGINT', 'SIGTERM'] as const)('two campaign runs on one journal (the first stopped with %s)', (signal) => {
  it('refuses the second run, naming the first one\'s pid, and frees the journal when the first stops', async () => {
    const list = numbers(signal === 'SIGINT' ? '10' : '20', 4);
    const { dir, journal, args } = setUp(list, { concurrency: 2, batch_size: 2, ring_timeout_s: 60 });
    ari.subscriberBehaviour = () => ({ kind: 'no-answer' }); // rings until the test hangs up
    const dialsBefore = ari.dials.length;

    const first = campaign(args);
    const ringing = await waitFor(() => ari.dials.length - dialsBefore === 2 && ari.dials.slice(dialsBefore), 'the first run to dial', 15_000)
      .catch((err: Error) => { throw new Error(`${err.message}\n${first.output()}`); });
    expect(readPid(`${journal}.lock`)).toBe(first.child.pid);

    const second = campaign(args);
    expect(await second.exited).not.toBe(0);
    expect(second.output()).toBe(`another campaign run (pid ${first.child.pid}) is using the journal ${journal}; `
      + `wait for it to end, or if no such run exists delete ${journal}.lock\n`);
    expect(ari.dials.length - dialsBefore).toBe(2);

    first.child.kill(signal);
    await waitFor(() => first.output().includes('stopping: no new calls'), 'the first run to stop dialling');
    for (const dial of ringing) dial.hangup();
    expect(await first.exited, first.output()).toBe(1);
    expect(existsSync(`${journal}.lock`)).toBe(false);

    ari.subscriberBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const third = campaign(args);
    expect(await third.exited, third.output()).toBe(0);
    const dialled = ari.dials.slice(dialsBefore).map((d) => d.to);
    expect(dialled.sort()).toEqual([...list].sort()); // everyone, once
    expect(resultRows(dir).map((r) => r[1]).sort()).toEqual([...list].sort());
    expect(existsSync(`${journal}.lock`)).toBe(false);
  }, 40_000);
});

describe('a campaign whose journal cannot grow', () => {
  it('stops dialling at once with a plain message and the summary, exits 1, and a rerun dials nobody twice', async () => {
    const list = numbers('30', 20);
    const { dir, journal, args } = setUp(list, { concurrency: 4, batch_size: 2 });
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const limitKiB = 8;
    // Entries for no row of this list, so that only ~600 bytes of the limit are left for this run.
    const padding = `${JSON.stringify({ k: 'padding', e: 'dial', id: 'x'.repeat(100) })}\n`;
    writeFileSync(journal, padding.repeat(Math.floor((limitKiB * 1024 - 600) / padding.length)));
    const dialsBefore = ari.dials.length;

    const first = campaign(args, limitKiB);
    expect(await first.exited, first.output()).toBe(1);
    const output = first.output();
    expect(output).toContain(`stopping: cannot write the campaign journal ${journal}: the file has reached the largest size this system or user allows (EFBIG); no new calls`);
    expect(output).toMatch(/^summary: .*not yet done \d+ \(20 rows/m);
    expect(output).not.toMatch(/\n\s+at /); // no stack trace
    expect(statSync(journal).size).toBeLessThanOrEqual(limitKiB * 1024);
    // Every line is whole (a failed write is cut back), and every call placed had its dial line first.
    const entries = readFileSync(journal, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { k: string; e: string });
    const journalled = entries.filter((e) => e.e === 'dial' && e.k !== 'padding').map((e) => e.k.split(':')[1]);
    const placed = ari.dials.slice(dialsBefore).map((d) => d.to);
    expect(placed.length).toBeLessThan(list.length);
    expect(placed.every((n) => journalled.includes(n))).toBe(true);

    const second = campaign(args);
    expect(await second.exited, second.output()).toBe(0);
    const dialled = ari.dials.slice(dialsBefore).map((d) => d.to);
    expect(new Set(dialled).size).toBe(dialled.length); // nobody twice
    const rows = resultRows(dir);
    expect(rows.map((r) => r[1]).sort()).toEqual([...list].sort());
    expect(rows.every((r) => r[2] === 'connected' || r[2] === 'unknown')).toBe(true);
  }, 40_000);
});
