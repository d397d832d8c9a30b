/**
 * The campaign journal on real files: one run at a time (a lock file holding the pid), and lines
 * torn by a crash mid-write never make a row look untouched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal } from '../src/outbound/journal.js';
import { JournalLockedError } from '../src/outbound/journal-lock.js';

function journalPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'twin-journal-')), 'list.csv.journal');
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid!;
}

describe('journal lock', () => {
  it('refuses a second open while the first holds the lock, naming its pid, and frees it on close', () => {
    const path = journalPath();
    const first = new Journal(path);
    expect(readFileSync(`${path}.lock`, 'utf8').trim()).toBe(String(process.pid));
    expect(() => new Journal(path)).toThrow(JournalLockedError);
    expect(() => new Journal(path)).toThrow(`another campaign run (pid ${process.pid}) is using the journal ${path}`);
    first.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    new Journal(path).close();
  });

  it('takes over a lock left by a run that died', () => {
    const path = journalPath();
    writeFileSync(`${path}.lock`, `${deadPid()}\n`);
    const journal = new Journal(path);
    expect(readFileSync(`${path}.lock`, 'utf8').trim()).toBe(String(process.pid));
    journal.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
  });
});

describe('journal with torn lines', () => {
  const done = { id: 'a', to: '+442079460001', from: '+12025550143', bot: 'b', pbx: 'asterisk' as const, status: 'busy' as const };

  it('starts a fresh line after a torn last line, so the next entry reads back whole', () => {
    const path = journalPath();
    writeFileSync(path, `${JSON.stringify({ k: '2:+442079460001', e: 'done', r: done })}\n{"k":"3:+442079460002","e":"di`);
    const journal = new Journal(path);
    journal.markDialling('4:+442079460003', 'call-4');
    journal.close();

    const again = new Journal(path);
    expect(again.rows.get('2:+442079460001')).toEqual({ result: done });
    expect(again.rows.get('3:+442079460002')).toEqual({ torn: true });
    expect(again.rows.get('4:+442079460003')).toEqual({ dialledId: 'call-4' });
    again.close();
    expect(readFileSync(path, 'utf8').split('\n').at(-2)).toBe('{"k":"4:+442079460003","e":"dial","id":"call-4"}');
  });

  it('reads an entry that an older version appended straight onto a torn line', () => {
    const path = journalPath();
    writeFileSync(path, '{"k":"3:+442079460002","e":"di{"k":"4:+442079460003","e":"dial","id":"call-4"}\n{"k":"5:+4420794');
    const journal = new Journal(path);
    expect(journal.rows.get('3:+442079460002')).toEqual({ torn: true });
    expect(journal.rows.get('4:+442079460003')).toEqual({ dialledId: 'call-4' });
    expect(journal.rows.size).toBe(2); // a key cut in half names no row
    journal.close();
  });
});
