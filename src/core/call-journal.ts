/**
 * The calls sent to Twin and not yet counted, remembered across restarts of the product (kill -9
 * included), so that every one ends in exactly one outcome line: a call still alive when the next
 * run starts is followed by that run to its end; one that ended while no run was up is counted at
 * the next start.
 *
 * `<state.dir>/calls.jsonl`, one JSON line per step, appended as the step happens:
 *   {"t":"sent","pbx":"asterisk","callId":…,"twinId":…,"route":…,"bot":…,…}  the bot leg is being opened
 *   {"t":"answered","pbx":…,"callId":…,"setupMs":…}                           the bot answered
 *   {"t":"done","pbx":…,"callId":…}                                            its outcome line is written
 * A write goes to the operating system at once (it survives the process being killed) and is
 * flushed to the disk within a second (a machine crash may lose that second). The file is rewritten
 * with only the open calls at each start and whenever it has grown by many finished ones. One
 * product per folder: the folder is locked while open.
 */
import {
  closeSync, existsSync, fdatasync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { JournalLock } from '../outbound/journal-lock.js';
import type { AnsweredCall } from './types.js';

/** A call sent to Twin, as the journal remembers it. */
export interface JournalCall {
  pbx: AnsweredCall['pbx'];
  callId: string;
  direction: AnsweredCall['direction'];
  /** Cleaned numbers, as in the outcome line. */
  caller: string;
  dialed: string;
  route: string;
  bot: string;
  twinId: string;
  /** When the bot leg was opened (epoch ms). */
  sentAt: number;
  warmupMs?: number;
  /** Set once the bot answered: from the call reaching the product to the answer. */
  setupMs?: number;
}

type Line =
  | ({ t: 'sent' } & JournalCall)
  | { t: 'answered'; pbx: JournalCall['pbx']; callId: string; setupMs: number }
  | { t: 'done'; pbx: JournalCall['pbx']; callId: string };

export const JOURNAL_FILE = 'calls.jsonl';
/** Rewrite the file once this many lines were appended since the last rewrite (and most are finished calls). */
const COMPACT_AFTER_LINES = 50_000;
const SYNC_EVERY_MS = 1000;
/** A journal that cannot be written (disk full) is reported at most this often; calls go on regardless. */
const WARN_EVERY_MS = 60_000;

export class CallJournal {
  /** Calls open in the file when it was opened: sent by an earlier run and never counted. */
  readonly earlier: JournalCall[];
  readonly path: string;
  private readonly open = new Map<string, { call: JournalCall; earlier: boolean }>();
  private fd: number;
  private readonly lock: JournalLock;
  private linesSinceRewrite = 0;
  private dirty = false;
  private readonly syncTimer: NodeJS.Timeout;
  private closed = false;
  private lastWarning = -Infinity;

  /** Creates the folder if needed, locks it, reads the file and rewrites it with the open calls only. Throws if it cannot. */
  constructor(readonly dir: string, private readonly clock: Clock, private readonly log: Logger) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, JOURNAL_FILE);
    this.lock = new JournalLock(this.path);
    try {
      if (existsSync(this.path)) this.load(readFileSync(this.path, 'utf8'));
      this.earlier = [...this.open.values()].map((entry) => entry.call);
      this.fd = this.rewrite();
    } catch (err) {
      this.lock.release();
      throw err;
    }
    this.syncTimer = setInterval(() => this.flush(), SYNC_EVERY_MS);
    this.syncTimer.unref();
  }

  /** The bot leg of this call is being opened: from now on it must be counted, whatever happens to this run. */
  sending(call: Omit<JournalCall, 'sentAt'>): void {
    const entry: JournalCall = { ...call, sentAt: this.clock.now() };
    this.open.set(key(call.pbx, call.callId), { call: entry, earlier: false });
    this.append({ t: 'sent', ...entry });
  }

  answered(pbx: JournalCall['pbx'], callId: string, setupMs: number): void {
    const entry = this.open.get(key(pbx, callId));
    if (!entry) return;
    entry.call.setupMs = setupMs;
    this.append({ t: 'answered', pbx, callId, setupMs });
  }

  /** The call's outcome line is out: it is counted. Calls the journal does not hold open are ignored. */
  done(pbx: JournalCall['pbx'], callId: string): void {
    if (!this.open.delete(key(pbx, callId))) return;
    this.append({ t: 'done', pbx, callId });
  }

  /** Sent by an earlier run, not yet counted, and not taken on by a call flow of this run. */
  isEarlier(pbx: JournalCall['pbx'], callId: string): boolean {
    return this.open.get(key(pbx, callId))?.earlier ?? false;
  }

  /** A call flow of this run has taken this call on (the PBX handed it to us again): it counts it. */
  claim(pbx: JournalCall['pbx'], callId: string): void {
    const entry = this.open.get(key(pbx, callId));
    if (entry) entry.earlier = false;
  }

  /** Calls open now (this run's and earlier runs'). */
  get openCount(): number {
    return this.open.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.syncTimer);
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
    } finally {
      this.lock.release();
    }
  }

  /** Never fails a call: a line that cannot be written is reported (the call is then counted by this run only). */
  private append(line: Line): void {
    if (this.closed) return;
    try {
      const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
      for (let written = 0; written < bytes.length;) written += writeSync(this.fd, bytes, written);
      this.dirty = true;
      this.linesSinceRewrite += 1;
      if (this.linesSinceRewrite >= COMPACT_AFTER_LINES && this.open.size * 4 < this.linesSinceRewrite) {
        const next = this.rewrite(); // the old file is replaced only once the new one is on disk
        closeSync(this.fd);
        this.fd = next;
      }
    } catch (err) {
      if (this.clock.now() - this.lastWarning < WARN_EVERY_MS) return;
      this.lastWarning = this.clock.now();
      this.log.error({ path: this.path, err: (err as NodeJS.ErrnoException).code ?? (err as Error).message },
        'cannot write the call journal: calls that outlive a restart of the product may go uncounted');
    }
  }

  /** To the disk, not only to the operating system; in the background, at most once a second. */
  private flush(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    fdatasync(this.fd, () => { /* a failed flush leaves the lines with the OS, which writes them later */ });
  }

  /** Writes the open calls to a new file, replaces the old one with it, and opens it for appending. */
  private rewrite(): number {
    const tmp = `${this.path}.tmp`;
    const lines = [...this.open.values()].map(({ call }) => `${JSON.stringify({ t: 'sent', ...call })}\n`).join('');
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, lines);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    this.linesSinceRewrite = 0;
    return openSync(this.path, 'a', 0o600);
  }

  /** Every line in order; a line cut off by a machine crash mid-write is skipped. */
  private load(text: string): void {
    for (const raw of text.split('\n')) {
      if (raw.trim() === '') continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        continue;
      }
      if (typeof line?.pbx !== 'string' || typeof line.callId !== 'string') continue;
      const k = key(line.pbx, line.callId);
      if (line.t === 'sent') {
        const { t: _t, ...call } = line;
        this.open.set(k, { call, earlier: true });
      } else if (line.t === 'answered') {
        const entry = this.open.get(k);
        if (entry) entry.call.setupMs = line.setupMs;
      } else if (line.t === 'done') {
        this.open.delete(k);
      }
    }
  }
}

function key(pbx: string, callId: string): string {
  return `${pbx}:${callId}`;
}
