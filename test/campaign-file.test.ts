/** The campaign file's results: strangers' values cannot become spreadsheet formulas. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { readCampaign, writeResults } from '../src/outbound/campaign-file.js';

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
});
