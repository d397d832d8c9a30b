/**
 * Campaigns through the simulators on both PBXs: batched warm-ups, skipped rejections, a pause
 * through the trunk's cool-down (injectable clock) and the journal that makes a rerun safe.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { readCampaign, writeResults } from '../src/outbound/campaign-file.js';
import type { CampaignLimits } from '../src/outbound/campaign.js';
import { Journal } from '../src/outbound/journal.js';
import type { Lab } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';
import { labPerTest, waitFor } from './helpers.js';

const NUMBERS = ['+442079460001', '+442079460002', '+442079460003', '+442079460004', '+442079460005', '+442079460006'];

function csvFile(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'twin-campaign-'));
  const path = join(dir, 'campaign.csv');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function start(lab: Lab, path: string, limits: Partial<CampaignLimits> = {}) {
  const rows = readCampaign(path, lab.config);
  const journal = new Journal(`${path}.journal`);
  const campaign = lab.daemon.campaign(rows, journal, { concurrency: 10, callsPerSecond: 100, batchSize: 3, ...limits });
  return { rows, journal, campaign };
}

describe.each<PbxKind>(['asterisk', 'freeswitch'])('%s: campaign', (pbxKind) => {
  const startLab = labPerTest(pbxKind);
  const config = { outbound: { caller_id: '+12025550143', ring_timeout_s: 1 } };

  it('batches warm-ups, skips rejected numbers, records one outcome per number', async () => {
    const lab = await startLab({ config });
    const pbx = lab.pbx();
    const path = csvFile(['number,bot,var_name', ...NUMBERS.map((n, i) => `${n},sales,Name ${i}`), 'not-a-number,sales,x']);
    lab.twin.script((_id, call) => (call.number === NUMBERS[1] ? { kind: 'null' } : { kind: 'id' }));
    pbx.setSubscriberBehaviour((n) => (n === NUMBERS[2] ? { kind: 'no-answer' } : n === NUMBERS[3] ? { kind: 'busy' } : { kind: 'answer', afterMs: 5 }));
    pbx.setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    const { rows, journal, campaign } = start(lab, path);

    const summary = await campaign.run();
    journal.close();

    expect(lab.twin.warmups.map((w) => w.body.calls!.length)).toEqual([3, 3]);
    expect(summary).toMatchObject({ total: 7, pending: 0, warmupRequests: 2, counts: { connected: 3, rejected: 1, 'no-answer': 1, busy: 1, invalid: 1 } });
    expect(pbx.dials.map((d) => d.to).sort()).toEqual(NUMBERS.filter((n) => n !== NUMBERS[1]).sort());
    expect(lab.twin.warmups[0]!.body.calls![0]).toMatchObject({ botSettingsId: 'sales', callerId: '+12025550143', variables: { name: 'Name 0', direction: 'outbound' } });

    const results = join(path, '..', 'results.csv');
    writeResults(results, rows, campaign.results);
    const lines = readFileSync(results, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('line,number,status,detail,twin_id,call_id,warmup_ms,ring_ms,external_id');
    expect(lines).toHaveLength(8);
    expect(lines[2]).toMatch(/^3,\+442079460002,rejected,/);
    expect(lines[7]).toMatch(/^8,not-a-number,invalid,"?line 8: to: ""not-a-number"" is not in E.164 form/);
  });

  it('pauses the whole campaign through the cool-down after a Twin failure, then resumes by itself', async () => {
    const clock = new ManualClock();
    const lab = await startLab({ clock, config: { ...config, trunk: { cooldown_s: 120, max_calls_per_second: 1000 } } });
    lab.pbx().setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    const path = csvFile(['number', ...NUMBERS]);
    let failing = true;
    lab.twin.script(() => (failing ? { kind: 'status', status: 500 } : { kind: 'id' }));
    const { journal, campaign } = start(lab, path);
    const paused: number[] = [];
    campaign.on('paused', (until: number) => paused.push(until));

    const done = campaign.run();
    await waitFor(() => paused.length === 1 && clock.sleeping > 0, 'the campaign to pause');
    expect(paused[0]).toBe(clock.now() + 120_000);
    // Both first batches were sent before Twin's first answer came back.
    await waitFor(() => lab.twin.warmups.length === 2 && lab.twin.warmups.every((w) => w.status === 500), 'both batches to fail');
    expect(lab.pbx().dials).toHaveLength(0);
    clock.advance(119_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(lab.twin.warmups).toHaveLength(2); // still paused
    failing = false;
    clock.advance(1_000);

    const summary = await done;
    journal.close();
    expect(summary.counts).toEqual({ connected: 6 });
    // The probe went alone, then the trunk reopened for the rest.
    expect(lab.twin.warmups.map((w) => w.body.calls!.length)).toEqual([3, 3, 1, 3, 2]);
    expect(lab.pbx().dials).toHaveLength(6);
  });

  it('on a rerun skips finished rows and never redials a row that was being dialled', async () => {
    const lab = await startLab({ config });
    lab.pbx().setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    const path = csvFile(['number', ...NUMBERS.slice(0, 4)]);
    // A previous run finished line 2 and died while dialling line 3.
    const before = new Journal(`${path}.journal`);
    before.markDone(`2:${NUMBERS[0]}`, { id: 'x', to: NUMBERS[0]!, from: '+12025550143', bot: 'b', pbx: pbxKind, status: 'busy' });
    before.markDialling(`3:${NUMBERS[1]}`, 'y');
    before.close();

    const { journal, campaign } = start(lab, path);
    const summary = await campaign.run();
    journal.close();
    expect(summary.counts).toEqual({ busy: 1, unknown: 1, connected: 2 });
    expect(lab.pbx().dials.map((d) => d.to)).toEqual([NUMBERS[2], NUMBERS[3]]);
    const again = new Journal(`${path}.journal`);
    expect([...again.rows.values()].filter((r) => r.result).length).toBe(4);
    again.close();
  });

  it('never redials a row whose journal line was torn, and reports it unknown', async () => {
    const lab = await startLab({ config });
    lab.pbx().setBotBehaviour(() => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 }));
    const path = csvFile(['number', ...NUMBERS.slice(0, 4)]);
    // A previous run died mid-write of line 3's dial; an older version then appended line 4's onto it.
    writeFileSync(`${path}.journal`, `{"k":"3:${NUMBERS[1]}","e":"di{"k":"4:${NUMBERS[2]}","e":"dial","id":"z"}\n`);

    const { rows, journal, campaign } = start(lab, path);
    const summary = await campaign.run();
    journal.close();
    expect(summary.counts).toEqual({ unknown: 2, connected: 2 });
    expect(lab.pbx().dials.map((d) => d.to).sort()).toEqual([NUMBERS[0], NUMBERS[3]]);
    const results = join(path, '..', 'results.csv');
    writeResults(results, rows, campaign.results);
    expect(readFileSync(results, 'utf8')).toContain(`3,${NUMBERS[1]},unknown,"its journal entry was cut off`);
  });
});
