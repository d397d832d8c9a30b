/**
 * Campaign benchmark: calls placed per second with zero-latency simulators (subscribers and bot
 * answer at once; the bot hangs up after 500 ms), warm-up requests per call, and the cost of the
 * fsync'd journal. The daemon and the simulators share this process (one core's worth of work
 * each on a 2-core box); the figure is the product's ceiling on this machine, not a PBX's.
 * Run with: npm run bench:campaign [-- asterisk|freeswitch]
 * Prints a table and one machine-readable line per run:
 *   campaign <pbx> batch=N calls_per_s=N warmups_per_call=N journal_fsync_ms_p50=N
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readCampaign } from '../src/outbound/campaign-file.js';
import { Journal } from '../src/outbound/journal.js';
import { Lab } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';

const ROWS = Number(process.env.BENCH_CAMPAIGN_ROWS ?? 2000);
const CONCURRENCY = 300;

async function run(pbx: PbxKind, batchSize: number): Promise<string> {
  const lab = await Lab.start({
    pbx,
    freeswitch: { execDelayMs: 0 },
    config: {
      outbound: { caller_id: '+12025550143' },
      trunk: { max_concurrent_calls: 1000, max_calls_per_second: 100_000 },
    },
  });
  lab.twin.keepRecords = 10;
  const sim = lab.pbx();
  sim.setSubscriberBehaviour(() => ({ kind: 'answer', afterMs: 0 }));
  sim.setBotBehaviour(() => ({ kind: 'answer', afterMs: 0, hangupAfterMs: 500 }));
  if (pbx === 'asterisk') lab.ari.keepInvites = 0;
  else lab.fs.keepInvites = 0;

  const dir = mkdtempSync(join(tmpdir(), 'twin-bench-'));
  const csv = join(dir, 'list.csv');
  writeFileSync(csv, `number\n${Array.from({ length: ROWS }, (_, i) => `+4420794${String(i).padStart(5, '0')}`).join('\n')}\n`);
  const rows = readCampaign(csv, lab.config);
  const journal = new Journal(`${csv}.journal`);
  const fsyncMs = timeFsyncs(journal);
  const campaign = lab.daemon.campaign(rows, journal, { concurrency: CONCURRENCY, callsPerSecond: 100_000, batchSize });
  const started = performance.now();
  const summary = await campaign.run();
  const seconds = (performance.now() - started) / 1000;
  journal.close();
  await lab.stop();
  const connected = summary.counts.connected ?? 0;
  if (connected !== ROWS) console.error(`${pbx}: not all connected: ${JSON.stringify(summary.counts)}`);
  const perCall = summary.warmupRequests / ROWS;
  const p50 = percentile(fsyncMs, 50);
  console.log(`| ${pbx.padEnd(10)} | ${String(batchSize).padStart(5)} | ${String(ROWS).padStart(5)} | ${String(connected).padStart(9)} | ${(ROWS / seconds).toFixed(0).padStart(7)} | ${perCall.toFixed(2).padStart(16)} | ${p50.toFixed(3).padStart(14)} |`);
  return `campaign ${pbx} batch=${batchSize} calls_per_s=${(ROWS / seconds).toFixed(0)} warmups_per_call=${perCall.toFixed(2)} journal_fsync_ms_p50=${p50.toFixed(3)}`;
}

/** Wraps the journal's appends to time each write+fsync. */
function timeFsyncs(journal: Journal): number[] {
  const times: number[] = [];
  for (const method of ['markDialling', 'markDone'] as const) {
    const original = journal[method].bind(journal) as (key: string, value: never) => void;
    (journal as unknown as Record<string, unknown>)[method] = (key: string, value: never) => {
      const t = performance.now();
      original(key, value);
      times.push(performance.now() - t);
    };
  }
  return times;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const kinds = (process.argv[2] ? [process.argv[2]] : ['asterisk', 'freeswitch']) as PbxKind[];
console.log(`campaign of ${ROWS} numbers, concurrency ${CONCURRENCY}, zero-latency simulators`);
console.log('| pbx        | batch |  rows | connected | calls/s | warm-ups per call | fsync p50 (ms) |');
console.log('|------------|-------|-------|-----------|---------|------------------|----------------|');
const lines: string[] = [];
for (const pbx of kinds) {
  for (const batch of [1, 10]) lines.push(await run(pbx, batch));
}
for (const line of lines) console.log(line);
