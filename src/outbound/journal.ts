/**
 * A campaign's journal: one JSON line per step, fsync'd before the step happens, so a campaign
 * killed at any moment (even SIGKILL) and started again dials nobody twice and loses nobody.
 *
 * - `dial` is written before the subscriber is dialled; `done` when the call has its outcome.
 * - A row with `dial` but no `done` was being dialled when the previous run died: its outcome is
 *   unknown and it is not dialled again (at most once, by design). So is a row whose entry was cut
 *   off mid-write (`torn`): it may have been a `dial`.
 * - A row with neither is started from the warm-up again (a warm-up alone calls nobody).
 * - One run at a time: the journal is locked while open (journal-lock.ts).
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { JournalLock } from './journal-lock.js';
import type { OutboundResult } from './outbound.js';

type Entry = { k: string; e: 'dial'; id: string } | { k: string; e: 'done'; r: OutboundResult };

export interface RowState {
  dialledId?: string;
  /** An entry of this row was cut off mid-write; it may have been the `dial`. */
  torn?: boolean;
  result?: OutboundResult;
}

/** The journal cannot take another line (disk full, file too large, …): no call may start. */
export class JournalWriteError extends Error {
  constructor(readonly journalPath: string, readonly code: string | undefined, cause: string) {
    super(`cannot write the campaign journal ${journalPath}: ${WRITE_PROBLEMS[code ?? ''] ?? cause}`);
  }
}

const WRITE_PROBLEMS: Record<string, string> = {
  ENOSPC: 'the disk is full (ENOSPC)',
  EDQUOT: 'the disk quota is used up (EDQUOT)',
  EFBIG: 'the file has reached the largest size this system or user allows (EFBIG)',
};

/** Every entry starts so (JSON escapes quotes inside strings, so no value can contain it). */
const ENTRY_START = /(?=\{"k":")/;
const TORN_KEY = /^\{"k":"((?:[^"\\]|\\.)*)"/;

export class Journal {
  private readonly fd: number;
  private readonly lock: JournalLock;
  /** The file's length up to its last whole line: a failed write is cut back to it. */
  private size: number;
  /** The file ends in a torn line: the next entry starts a line of its own. */
  private startFreshLine: boolean;
  readonly rows = new Map<string, RowState>();

  /** Takes the journal's lock (JournalLockedError if another run holds it), then reads it. */
  constructor(readonly path: string) {
    this.lock = new JournalLock(path);
    try {
      const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
      this.load(text);
      this.fd = openSync(path, 'a');
      this.size = fstatSync(this.fd).size;
      this.startFreshLine = text !== '' && !text.endsWith('\n');
    } catch (err) {
      this.lock.release();
      throw err;
    }
  }

  markDialling(key: string, id: string): void {
    this.append({ k: key, e: 'dial', id });
    this.row(key).dialledId = id;
  }

  markDone(key: string, result: OutboundResult): void {
    this.append({ k: key, e: 'done', r: result });
    this.row(key).result = result;
  }

  /** Closes the file and releases the lock. */
  close(): void {
    try {
      closeSync(this.fd);
    } finally {
      this.lock.release();
    }
  }

  private row(key: string): RowState {
    let state = this.rows.get(key);
    if (!state) this.rows.set(key, (state = {}));
    return state;
  }

  /** Whole lines only: a short write is continued, and a failed one cut back off the file. */
  private append(entry: Entry): void {
    const line = Buffer.from(`${this.startFreshLine ? '\n' : ''}${JSON.stringify(entry)}\n`);
    try {
      for (let written = 0; written < line.length;) written += writeSync(this.fd, line, written);
      fsyncSync(this.fd);
    } catch (err) {
      this.cutBack();
      const { code, message } = err as NodeJS.ErrnoException;
      throw new JournalWriteError(this.path, code, message);
    }
    this.size += line.length;
    this.startFreshLine = false;
  }

  /** Removes a partly written line; if even that fails, the reader sees it as torn. */
  private cutBack(): void {
    try {
      ftruncateSync(this.fd, this.size);
    } catch {
      this.startFreshLine = true;
    }
  }

  private load(text: string): void {
    for (const line of text.split('\n')) {
      // An older version appended straight onto a torn line: split such a line into its entries.
      for (const piece of line.split(ENTRY_START)) this.loadEntry(piece);
    }
  }

  private loadEntry(text: string): void {
    if (text.trim() === '') return;
    let entry: Entry;
    try {
      entry = JSON.parse(text) as Entry;
    } catch {
      this.loadTorn(text);
      return;
    }
    if (entry.e === 'dial') this.row(entry.k).dialledId = entry.id;
    else if (entry.e === 'done') this.row(entry.k).result = entry.r;
  }

  /** A torn entry whose key is whole marks its row; one cut off inside the key names no row. */
  private loadTorn(text: string): void {
    const quoted = TORN_KEY.exec(text)?.[1];
    if (quoted === undefined) return;
    try {
      this.row(JSON.parse(`"${quoted}"`) as string).torn = true;
    } catch {
      // an escape cut in half: no row to name
    }
  }
}
