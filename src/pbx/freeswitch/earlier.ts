/**
 * FreeSWITCH: calls an earlier run of the product sent to Twin and never counted. A call handed
 * back (twin_next_step=bot_failed while the bot leg rings, released once answered: issue 20) or
 * handed over (TWIN_STATUS=CONNECTED, twin_next_step=released) goes on without the product, and its
 * end reaches whichever run holds the inbound connection: CUSTOM twin::bot_failed when the bot's leg
 * was not answered, twin::bot_hangup when the bot hangs up first, the twin-transfers verdicts,
 * CHANNEL_HANGUP_COMPLETE. The driver passes those of calls it does not know here; after each
 * inbound connection, `check` asks which calls still exist (`uuid_exists`).
 */
import type { JournalCall } from '../../core/call-journal.js';
import type { Logger } from '../../log.js';
import { EarlierCalls, TAKEN_OVER, type EarlierCallReport } from '../earlier-calls.js';
import type { EslEvent } from './esl.js';
import { endedByAfterTransfer, printableName, targetOf, type TransferVerdict } from './transfer.js';
import { botFailureDetail } from './fs-call.js';

export class EarlierFsCalls {
  private readonly calls: EarlierCalls;
  /** Calls the bot transferred to a person (twin::transferred): uuid → the target's name. */
  private readonly transferred = new Map<string, string>();

  constructor(calls: readonly JournalCall[] = [], report?: EarlierCallReport) {
    this.calls = new EarlierCalls(calls, report);
  }

  /**
   * After each inbound connection: the calls gone meanwhile are reported. A live one the earlier
   * run had not handed over (it died holding the call's socket) is marked handed over now if it is
   * still bridged with the bot (`bridge_to`), so that its end comes over the inbound connection
   * too; one no longer bridged has left the bot already (FreeSWITCH's dialplan has it).
   */
  async check(api: (command: string) => Promise<string>, log: Logger): Promise<void> {
    await Promise.all(this.calls.ids().map(async (uuid) => {
      const exists = (await api(`uuid_exists ${uuid}`).catch(() => '')).trim();
      if (exists !== 'true' && exists !== 'false') return; // no answer: asked again at the next connection
      this.calls.checked(uuid, exists === 'true', 'FreeSWITCH');
      if (exists !== 'true') return;
      const step = await getVar(api, uuid, 'twin_next_step');
      // Handed back, and its bot leg failed while no run was up: the dialplan's fallback has the caller.
      if (step === 'bot_failed' && (await getVar(api, uuid, 'TWIN_STATUS')) === 'BOT_FAILED') {
        return this.calls.end(uuid, { status: 'BOT_FAILED', detail: `the bot leg failed while the product was not running; ${TAKEN_OVER}` });
      }
      // Still on the earlier run's socket (the shipped dialplan set not_taken before `socket`): bridged?
      const bridgedTo = step === '' || step === 'not_taken' ? await getVar(api, uuid, 'bridge_to') : undefined;
      if (bridgedTo === undefined) return; // handed over already, or no answer (asked again at the next connection)
      if (bridgedTo !== '') {
        await api(`uuid_setvar ${uuid} twin_next_step released`).catch(() => '');
      } else {
        this.calls.end(uuid, { status: 'CONNECTED', endedBy: 'unknown', detail: `its part with the bot ended while the product was not running; ${TAKEN_OVER}` });
      }
    }));
    this.calls.announce(log);
  }

  /** CUSTOM twin::bot_failed: a handed-back call's bot leg was not answered; twin-after-socket runs the fallback. */
  onBotFailed(uuid: string, event: EslEvent): void {
    this.calls.end(uuid, { status: 'BOT_FAILED', detail: `${botFailureDetail(event)}; ${TAKEN_OVER}` });
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
    // Handed back and never answered: the caller hung up while the bot leg rang.
    if (event.get('variable_twin_next_step') === 'bot_failed' && event.get('variable_TWIN_STATUS') !== 'BOT_FAILED') {
      return this.calls.end(uuid, { status: 'ABANDONED', detail: `caller hung up while the bot leg rang; ${TAKEN_OVER}` });
    }
    this.calls.end(uuid, { status: 'CONNECTED', endedBy: 'caller', detail: TAKEN_OVER });
  }
}

/** A channel variable; '' when unset (`_undef_`); undefined when the channel is gone or FreeSWITCH did not answer. */
async function getVar(api: (command: string) => Promise<string>, uuid: string, name: string): Promise<string | undefined> {
  const value = (await api(`uuid_getvar ${uuid} ${name}`).catch(() => '-ERR')).trim();
  if (value.startsWith('-ERR')) return undefined;
  return value === '_undef_' ? '' : value;
}
