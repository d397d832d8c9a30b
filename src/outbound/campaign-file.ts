/**
 * A campaign's CSV (columns: number, optional caller, bot, external_id, record, var_*) and its
 * results file (CSV, or JSON Lines when the name ends in .jsonl / .ndjson).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { Config } from '../config/schema.js';
import type { OutboundResult } from './outbound.js';
import { parseCallRequest, RequestError, type CallRequest } from './request.js';

export interface CampaignRow {
  /** Stable across runs of the same file: the CSV line and the number as written. */
  key: string;
  line: number;
  number: string;
  /** The row's external_id as written, carried to the results (an invalid row's too). */
  externalId?: string;
  request?: CallRequest;
  /** Why the row cannot be called (bad number, bad field). */
  invalid?: string;
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);

export class CampaignFileError extends Error {}

export function readCampaign(path: string, config: Config, defaults: { pbx?: CallRequest['pbx'] } = {}): CampaignRow[] {
  let records: Record<string, string>[];
  try {
    records = parse(readFileSync(path), { columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), bom: true, skip_empty_lines: true, trim: true, relax_column_count: true });
  } catch (err) {
    throw new CampaignFileError(`${path}: ${(err as Error).message}`);
  }
  if (records.length > 0 && !('number' in records[0]!)) throw new CampaignFileError(`${path}: no 'number' column in the header line`);
  return records.map((record, i) => toRow(record, i + 2, config, defaults.pbx));
}

function toRow(record: Record<string, string>, line: number, config: Config, pbx?: CallRequest['pbx']): CampaignRow {
  const number = record.number ?? '';
  const row: CampaignRow = { key: `${line}:${number}`, line, number };
  if (record.external_id) row.externalId = record.external_id;
  const variables: Record<string, string> = {};
  for (const [column, value] of Object.entries(record)) {
    if (column.startsWith('var_') && value !== '') variables[column.slice(4)] = value;
  }
  try {
    row.request = parseCallRequest({
      to: number,
      ...(record.caller ? { from: record.caller } : {}),
      ...(record.bot ? { bot: record.bot } : {}),
      ...(record.external_id ? { external_id: record.external_id } : {}),
      ...(pbx ? { pbx } : {}),
      record: TRUE_WORDS.has((record.record ?? '').toLowerCase()),
      variables,
    }, config);
  } catch (err) {
    if (!(err instanceof RequestError)) throw err;
    row.invalid = `line ${line}: ${err.message}`;
  }
  return row;
}

/** external_id last: columns read by position before it was added keep their place. */
const COLUMNS = ['line', 'number', 'status', 'detail', 'twin_id', 'call_id', 'warmup_ms', 'ring_ms', 'external_id'] as const;

/**
 * Every file a campaign keeps beside its list is the list's whole name plus a suffix:
 * list.csv → list.csv.journal (and its .lock), list.csv.results.csv.
 */
export function campaignFiles(list: string): { journal: string; results: string } {
  return { journal: `${list}.journal`, results: `${list}.results.csv` };
}

/** Writes every row's outcome in the file's order; replaced atomically so a crash never leaves half a file. */
export function writeResults(path: string, rows: CampaignRow[], results: Map<string, OutboundResult>): void {
  const lines = rows.map((row) => {
    const r = results.get(row.key);
    return {
      line: row.line, number: r?.to ?? row.number, status: r?.status ?? (row.invalid ? 'invalid' : 'pending'),
      detail: r?.detail ?? row.invalid ?? '', twin_id: r?.twinId ?? '', call_id: r?.id ?? '',
      warmup_ms: r?.warmupMs ?? '', ring_ms: r?.ringMs ?? '', external_id: row.externalId ?? '',
    };
  });
  const text = /\.(jsonl|ndjson)$/i.test(path)
    ? lines.map((l) => JSON.stringify(l)).join('\n') + (lines.length ? '\n' : '')
    : stringify(lines.map(spreadsheetSafe), { header: true, columns: [...COLUMNS] });
  // A name of its own: two runs writing the same results file must not rename each other's.
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temporary, text);
    renameSync(temporary, path);
  } catch (err) {
    try {
      unlinkSync(temporary);
    } catch {
      // never created
    }
    throw err;
  }
}

/** What a spreadsheet may run as a formula: a cell starting with one of these. */
const FORMULA_START = /^[=+\-@\t\r]/;
/** …except a cell that is nothing but an E.164 number or a plain number (`-2+3+cmd|…` is neither). */
const PLAIN_NUMBER = /^(?:\+[1-9]\d{1,14}|-?\d+(?:\.\d+)?)$/;

/** Cells a spreadsheet would run as a formula get a leading apostrophe; +44… numbers stay as they are. */
function spreadsheetSafe(line: Record<string, string | number>): Record<string, string | number> {
  const safe: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(line)) {
    safe[key] = typeof value === 'string' && FORMULA_START.test(value) && !PLAIN_NUMBER.test(value) ? `'${value}` : value;
  }
  return safe;
}
