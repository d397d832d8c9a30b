/**
 * The daemon's call journal (calls sent to Twin and not yet counted, kept across restarts in
 * state.dir), and the outcome of a call an earlier run never counted.
 */
import type { Clock } from '../clock.js';
import { CallJournal, type JournalCall } from '../core/call-journal.js';
import type { CallOutcome } from '../core/types.js';
import type { Logger } from '../log.js';
import { JournalLockedError } from '../outbound/journal-lock.js';
import type { EarlierCallEnd } from '../pbx/earlier-calls.js';

/** The journal, or why it cannot be kept (calls are still taken; ones outliving this run may go uncounted). */
export function openCallJournal(stateDir: string, clock: Clock, log: Logger): { journal: CallJournal } | { problem: string } {
  try {
    return { journal: new CallJournal(stateDir, clock, log) };
  } catch (err) {
    const why = err instanceof JournalLockedError
      ? `another twin-connector (pid ${err.pid ?? 'unknown'}) uses ${stateDir}`
      : `${(err as NodeJS.ErrnoException).code ?? (err as Error).message} on ${stateDir}`;
    const problem = `cannot keep the call journal: ${why}`;
    log.error({ stateDir }, `${problem}; calls that outlive a restart of the product will not be counted`);
    return { problem };
  }
}

/** What the journal knows of the call (numbers, route, bot, Twin id, warm-up) and what the PBX told this run about its end. */
export function earlierCallOutcome(call: JournalCall, end: EarlierCallEnd): CallOutcome {
  return {
    callId: call.callId, pbx: call.pbx, direction: call.direction, caller: call.caller, dialed: call.dialed,
    route: call.route, bot: call.bot, status: end.status, twinId: call.twinId,
    ...(call.warmupMs !== undefined ? { warmupMs: call.warmupMs } : {}),
    setupMs: call.setupMs ?? 0, detail: end.detail,
    ...(end.endedBy !== undefined ? { endedBy: end.endedBy } : {}),
    ...(end.transferTarget !== undefined ? { transferTarget: end.transferTarget } : {}),
  };
}
