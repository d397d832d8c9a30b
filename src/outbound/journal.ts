/**
 * A campaign's journal: one JSON line per step, fsync'd before the step happens, so a campaign
 * killed at any moment (even SIGKILL) and started again dials nobody twice and loses nobody.
 *
 * - `dial` is written before the subscriber is dialled; `done` when the call has its outcome.
 * - A row with `dial` but no `done` was being dialled when the previous run died: its outcome is
 *   unknown and it is not dialled again (at most once, by design).
 * - A row with neither is started from the warm-up again (a warm-up alone calls nobody).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { OutboundResult } from './outbound.js';

type Entry = { k: string; e: 'dial'; id: string } | { k: string; e: 'done'; r: OutboundResult };

export interface RowState {
  dialledId?: string;
  result?: OutboundResult;
}

export class Journal {
  private readonly fd: number;
  readonly rows = new Map<string, RowState>();

  constructor(readonly path: string) {
    if (existsSync(path)) this.load(readFileSync(path, 'utf8'));
    this.fd = openSync(path, 'a');
  }

  markDialling(key: string, id: string): void {
    this.append({ k: key, e: 'dial', id });
    this.row(key).dialledId = id;
  }

  markDone(key: string, result: OutboundResult): void {
    this.append({ k: key, e: 'done', r: result });
    this.row(key).result = result;
  }

  close(): void {
    closeSync(this.fd);
  }

  private row(key: string): RowState {
    let state = this.rows.get(key);
    if (!state) this.rows.set(key, (state = {}));
    return state;
  }

  private append(entry: Entry): void {
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fsyncSync(this.fd);
  }

  private load(text: string): void {
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let entry: Entry;
      try {
        entry = JSON.parse(line) as Entry;
      } catch {
        continue; // a line torn by a crash mid-write: its step had not happened yet
      }
      if (entry.e === 'dial') this.row(entry.k).dialledId = entry.id;
      else if (entry.e === 'done') this.row(entry.k).result = entry.r;
    }
  }
}
