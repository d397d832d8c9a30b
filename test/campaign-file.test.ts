/** The campaign file's results: strangers' values cannot become spreadsheet formulas. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { readCampaign, writeResults } from '../src/outbound/campaign-file.js';
import type { OutboundResult } from '../src/outbound/outbound.js';

const config = parseConfig({
  twin: { iam_url: 'https://iam.example', cis_url: 'https://cis.example', token: 't', sip: { uri: 'sip:bot@twin.example' } },
  asterisk: { url: 'http://127.0.0.1:8088', username: 'twin', password: 'x' },
  outbound: { caller_id: '+12025550143' },
  routes: { default: { bot: 'b1' } },
}, {});

describe('campaign results file', () => {
  it('guards cells a spreadsheet would run as formulas, and keeps +E.164 numbers as they are', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-results-'));
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, 'number\n+442079460018\n"=HYPERLINK(""http://evil.example"",""x"")"\n-cmd|calc\n@SUM(A1)\n');
    const rows = readCampaign(csv, config);
    expect(rows.map((r) => r.invalid === undefined)).toEqual([true, false, false, false]);
    const out = join(dir, 'results.csv');
    writeResults(out, rows, new Map());
    const cells = readFileSync(out, 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[1]);
    expect(cells[0]).toBe('+442079460018');
    expect(cells[1]).toMatch(/^"'=HYPERLINK/);
    expect(cells[2]).toBe("'-cmd|calc");
    expect(cells[3]).toBe("'@SUM(A1)");
  });

  it('guards formulas that start like a number (-2+3+cmd|…, +1+HYPERLINK(…)) in every column, and keeps plain numbers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-results-'));
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, `number\n+442079460018\n-2+3+cmd|' /C calc'!A0\n"+1+HYPERLINK(""http://evil.example"",""x"")"\n-5\n12.5\n`);
    const rows = readCampaign(csv, config);
    const hostile: OutboundResult = {
      id: '\r=1+1', to: '+442079460018', from: '+12025550143', bot: 'b', pbx: 'asterisk', status: 'failed',
      detail: '\t=cmd|calc', twinId: '+1+1',
    };
    const out = join(dir, 'results.csv');
    writeResults(out, rows, new Map([[rows[0]!.key, hostile]]));
    const [first, ...others] = (parse(readFileSync(out), { columns: true }) as Record<string, string>[]);
    expect(first).toMatchObject({ number: '+442079460018', detail: "'\t=cmd|calc", twin_id: "'+1+1", call_id: "'\r=1+1" });
    expect(others.map((r) => r.number)).toEqual(["'-2+3+cmd|' /C calc'!A0", `'+1+HYPERLINK("http://evil.example","x")`, '-5', '12.5']);
  });

  it('writes through a temporary file of its own, whatever another run left beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-results-'));
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, 'number\n+442079460018\n');
    const out = join(dir, 'results.csv');
    mkdirSync(`${out}.tmp`); // the shared temporary name of old: here a folder, so it cannot be overwritten
    writeResults(out, readCampaign(csv, config), new Map());
    expect(readFileSync(out, 'utf8')).toContain('2,+442079460018,pending');
    expect(readdirSync(dir).sort()).toEqual(['list.csv', 'results.csv', 'results.csv.tmp']);
  });

  it('keeps each row\'s external_id as written, in JSON Lines too (issue 22, item 3)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-results-'));
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, 'number,external_id\n+442079460018,crm-1\n+442079460019,\n12,crm-3\n');
    const rows = readCampaign(csv, config);
    const out = join(dir, 'results.jsonl');
    writeResults(out, rows, new Map());
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.status, l.external_id])).toEqual([['pending', 'crm-1'], ['pending', ''], ['invalid', 'crm-3']]);
  });
});
