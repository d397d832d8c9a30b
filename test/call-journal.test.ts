/**
 * The call journal on a real folder: what a run leaves open is what the next run gets as earlier
 * calls; the file is rewritten with the open calls only; one product per folder; a folder that
 * cannot be used leaves the product taking calls, degraded.
 */
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { CallJournal, JOURNAL_FILE } from '../src/core/call-journal.js';
import { silentLogger } from '../src/log.js';
import { JournalLockedError } from '../src/outbound/journal-lock.js';
import { labPerTest, waitFor } from './helpers.js';

const call = (callId: string) => ({
  pbx: 'asterisk' as const, callId, direction: 'inbound' as const, caller: '+15551230000', dialed: '100',
  route: 'default', bot: 'bot-default', twinId: `twin-${callId}`, warmupMs: 12,
});

describe('call journal', () => {
  const open: CallJournal[] = [];
  const journal = (dir: string, clock = new ManualClock()) => {
    const j = new CallJournal(dir, clock, silentLogger);
    open.push(j);
    return j;
  };
  afterEach(() => {
    for (const j of open.splice(0)) j.close();
  });

  it('hands the next run the calls sent and not counted, with what was known, and rewrites the file with them only', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'twin-journal-')), 'state');
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 7, 29, 0));
    const first = journal(dir, clock);
    expect(first.earlier).toEqual([]);
    first.sending(call('a'));
    first.answered('asterisk', 'a', 40);
    first.sending(call('b'));
    first.sending(call('c'));
    first.done('asterisk', 'c');
    first.done('asterisk', 'unknown'); // never sent: nothing written
    first.close();
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8').trim().split('\n')).toHaveLength(5);

    const second = journal(dir);
    expect(second.earlier).toEqual([
      { ...call('a'), sentAt: clock.now(), setupMs: 40 },
      { ...call('b'), sentAt: clock.now() },
    ]);
    expect(second.isEarlier('asterisk', 'a')).toBe(true);
    expect(second.isEarlier('freeswitch', 'a')).toBe(false);
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8').trim().split('\n')).toHaveLength(2); // rewritten: open calls only
    second.claim('asterisk', 'b'); // a call flow of this run took it on
    expect(second.isEarlier('asterisk', 'b')).toBe(false);
    second.done('asterisk', 'a');
    second.close();

    // A line cut off by a machine crash is skipped; the rest is read.
    appendFileSync(join(dir, JOURNAL_FILE), '{"t":"done","pbx":"aster');
    const third = journal(dir);
    expect(third.earlier.map((c) => c.callId)).toEqual(['b']);
  });

  it('does not grow without bound: once many calls are finished, the file holds the open ones only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-journal-'));
    const j = journal(dir);
    j.sending(call('long'));
    for (let i = 0; i < 30_000; i++) {
      j.sending(call(`c${i}`));
      j.done('asterisk', `c${i}`);
    }
    const lines = readFileSync(join(dir, JOURNAL_FILE), 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThan(20_000); // 60 001 lines written; rewritten at 50 000
    expect(lines[0]).toContain('"callId":"long"');
    j.close();
    expect(journal(dir).earlier.map((c) => c.callId)).toEqual(['long']);
  });

  it('is one product\'s: a second one on the same folder is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-journal-'));
    journal(dir);
    expect(() => new CallJournal(dir, new ManualClock(), silentLogger)).toThrow(JournalLockedError);
  });
});

describe('call journal in the daemon', () => {
  const startLab = labPerTest('asterisk');

  it('a state folder that cannot be used: calls are taken, /readyz says degraded', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'twin-journal-')), 'not-a-folder');
    writeFileSync(file, '');
    const lab = await startLab({ config: { state: { dir: file }, http: { listen_port: 0 } } });
    const ready = await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, degraded: ['call_journal_unavailable'] });
    const caller = lab.pbx().placeCall();
    await waitFor(() => lab.pbx().channelVar(caller.id, 'TWIN_STATUS') === 'CONNECTED', 'the call to be bridged');
    caller.hangup();
    expect((await lab.outcomeOf(caller.id)).status).toBe('CONNECTED');
  });
});
