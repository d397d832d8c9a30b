/**
 * One campaign run per journal: `<journal>.lock` holds the pid of the run that owns it. Two runs on
 * one journal would both see the same rows as untouched and dial everyone twice.
 *
 * The lock file is created with O_EXCL ('wx'), so of two runs starting together exactly one gets it.
 * A lock left by a run that died (its pid no longer exists) is taken over; the lock is removed when
 * the journal is closed, and at the latest when the process exits.
 */
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';

export class JournalLockedError extends Error {
  constructor(readonly journalPath: string, readonly pid: number | undefined) {
    super(`another campaign run (${pid === undefined ? 'pid unknown' : `pid ${pid}`}) is using the journal ${journalPath}; `
      + `wait for it to end, or if no such run exists delete ${journalPath}.lock`);
  }
}

/** Rounds of "create, else take over a stale lock" before giving up (another run keeps winning). */
const ATTEMPTS = 3;

export class JournalLock {
  readonly path: string;
  private held = false;
  private readonly releaseAtExit = () => this.release();

  /** Takes the lock or throws JournalLockedError naming the run that holds it. */
  constructor(readonly journalPath: string) {
    this.path = `${journalPath}.lock`;
    for (let attempt = 1; !this.tryCreate(); attempt++) {
      const holder = readPid(this.path);
      if (attempt === ATTEMPTS || (holder !== undefined && isAlive(holder))) throw new JournalLockedError(journalPath, holder);
      this.takeOverStale();
    }
    process.once('exit', this.releaseAtExit);
  }

  /** Removes the lock file if it is still ours. Safe to call more than once. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    process.removeListener('exit', this.releaseAtExit);
    if (readPid(this.path) === process.pid) unlinkQuietly(this.path);
  }

  private tryCreate(): boolean {
    try {
      writeFileSync(this.path, `${process.pid}\n`, { flag: 'wx' });
      this.held = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return this.held;
  }

  /**
   * Moves the stale lock aside (rename is atomic: of two runs taking over, one moves it) and checks
   * what it moved: if a live run had just created a fresh lock in its place, that lock goes back.
   */
  private takeOverStale(): void {
    const aside = `${this.path}.${process.pid}.stale`;
    try {
      renameSync(this.path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone already: try to create it again
      throw err;
    }
    const holder = readPid(aside);
    if (holder !== undefined && isAlive(holder)) {
      try {
        linkSync(aside, this.path); // link, not rename: never replaces a lock created meanwhile
      } catch {
        // a third run holds it now; either way it is not ours
      }
      unlinkQuietly(aside);
      throw new JournalLockedError(this.journalPath, holder);
    }
    unlinkQuietly(aside);
  }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 checks that the process exists; EPERM means it does, under another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
