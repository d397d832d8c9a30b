/**
 * FreeSWITCH: calls an earlier run of the product sent to Twin and never counted. A call handed
 * over to FreeSWITCH (TWIN_STATUS=CONNECTED, twin_next_step=released) goes on without the product,
 * and its end reaches whichever run holds the inbound connection: CUSTOM twin::bot_hangup when the
 * bot hangs up first, the twin-transfers verdicts, CHANNEL_HANGUP_COMPLETE. The driver passes
 * those of calls it does not know here; after each inbound connection, `check` asks which calls
 * still exist (`uuid_exists`).
 */
import type { JournalCall } from '../../core/call-journal.js';
import type { Logger } from '../../log.js';
import { EarlierCalls, TAKEN_OVER, type EarlierCallReport } from '../earlier-calls.js';
import type { EslEvent } from './esl.js';
import { endedByAfterTransfer, printableName, targetOf, type TransferVerdict } from './transfer.js';

export class EarlierFsCalls {
  private readonly calls: EarlierCalls;
  /** Calls the bot transferred to a person (twin::transferred): uuid → the target's name. */
  private readonly transferred = new Map<string, string>();

  constructor(calls: readonly JournalCall[] = [], report?: EarlierCallReport) {
    this.calls = new EarlierCalls(calls, report);
  }

  get size(): number {
    return this.calls.size;
  }

  /**
   * After each inbound connection: the calls gone meanwhile are reported; a live one the earlier
   * run had not yet handed over (it died between the bot's answer and the hand-over) is marked
   * handed over now, so that its end comes over the inbound connection too.
   */
  async check(api: (command: string) => Promise<string>, log: Logger): Promise<void> {
    await Promise.all(this.calls.ids().map(async (uuid) => {
      const exists = (await api(`uuid_exists ${uuid}`).catch(() => '')).trim();
      if (exists !== 'true' && exists !== 'false') return; // no answer: asked again at the next connection
      this.calls.checked(uuid, exists === 'true', 'FreeSWITCH');
      if (exists !== 'true') return;
      const step = (await api(`uuid_getvar ${uuid} twin_next_step`).catch(() => '')).trim();
      if (step !== 'released' && step !== '') await api(`uuid_setvar ${uuid} twin_next_step released`).catch(() => '');
    }));
    this.calls.announce(log);
  }

  /** CUSTOM twin::bot_hangup: the bot left first; FreeSWITCH's twin-after-socket sends the caller on. */
  onBotHangup(uuid: string): void {
    this.calls.end(uuid, { status: 'CONNECTED', endedBy: 'bot', detail: TAKEN_OVER });
  }

  /** twin-transfers' verdict on the bot's REFER: a person took the caller, or nobody did (the fallback has them). */
  onTransfer(uuid: string, verdict: TransferVerdict, event: EslEvent): void {
    if (!this.calls.has(uuid)) return;
    const target = targetOf(event, printableName(event.get('Caller-Destination-Number') ?? ''));
    if (verdict === 'transferred') return void this.transferred.set(uuid, target);
    this.calls.end(uuid, {
      status: 'TRANSFER_FAILED', transferTarget: target,
      detail: `${target} ${verdict === 'refused' ? 'is not among the route\'s transfers' : 'did not take the call'}; ${TAKEN_OVER}`,
    });
  }

  /** CHANNEL_HANGUP_COMPLETE of a handed-over call: the caller's end, after a transfer or with the bot. */
  onHangupComplete(uuid: string, event: EslEvent): void {
    if (!this.calls.has(uuid)) return;
    const target = this.transferred.get(uuid);
    this.transferred.delete(uuid);
    if (target !== undefined || event.get('variable_TWIN_STATUS') === 'TRANSFERRED') {
      const transferTarget = target ?? targetOf(event, '');
      return this.calls.end(uuid, { status: 'TRANSFERRED', endedBy: endedByAfterTransfer(event), ...(transferTarget ? { transferTarget } : {}), detail: TAKEN_OVER });
    }
    this.calls.end(uuid, { status: 'CONNECTED', endedBy: 'caller', detail: TAKEN_OVER });
  }
}
