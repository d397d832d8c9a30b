/**
 * Transfers from the bot to people on FreeSWITCH (SIP REFER on the bot leg). Sofia answers the
 * REFER itself and transfers the *caller* to the Refer-To user, in the caller's own context unless
 * `force_transfer_context` is set (recording s9-refer). So the product pins that variable to the
 * shipped context twin-transfers (dialplan/freeswitch/twin-transfers.xml) and hands it the route's
 * allowed names, timeout and fallback as variables; the dialplan decides, and tells back with a
 * CUSTOM event (twin::transferred / twin::transfer_refused / twin::transfer_failed) that the call
 * socket sees as the `event` application running, and the inbound connection as the event itself.
 */
import { causeName } from '../../core/q850.js';
import type { ConnectOptions, EndedBy } from '../../core/types.js';
import type { EslEvent } from './esl-event.js';

export const TRANSFER_CONTEXT = 'twin-transfers';
export const TRANSFERRED_EVENT = 'twin::transferred';
export const TRANSFER_REFUSED_EVENT = 'twin::transfer_refused';
export const TRANSFER_FAILED_EVENT = 'twin::transfer_failed';
export const TRANSFER_EVENTS = [TRANSFERRED_EVENT, TRANSFER_REFUSED_EVENT, TRANSFER_FAILED_EVENT];

export type TransferVerdict = 'transferred' | 'refused' | 'failed';

/** Setting it empty removes it: a caller the bot no longer holds may be transferred as the PBX pleases. */
export const RELEASE_TRANSFER_GUARD = 'force_transfer_context=';

const VERDICTS: Record<string, TransferVerdict> = {
  [TRANSFERRED_EVENT]: 'transferred', [TRANSFER_REFUSED_EVENT]: 'refused', [TRANSFER_FAILED_EVENT]: 'failed',
};
/** What a Refer-To name may look like to be used as it is (the config's names are restricted the same way). */
const SAFE_NAME = /^[A-Za-z0-9_+*#.-]{1,80}$/;

/**
 * The caller's variables for `uuid_setvar_multi` (`;`-separated, no spaces: the config's names and
 * dialplan words allow neither). FreeSWITCH looks variables up case-insensitively, so names that
 * differ only in case would share one variable: those are left out, and reported.
 */
export function transferVariables(options: ConnectOptions): { vars: string[]; ambiguous: string[] } {
  const vars = [`force_transfer_context=${TRANSFER_CONTEXT}`, `twin_transfer_timeout=${options.transferTimeoutS}`];
  const fallback = options.fallback;
  if (fallback.action === 'hangup') vars.push('twin_fb_action=hangup', `twin_fb_cause=${causeName(fallback.cause)}`);
  else vars.push('twin_fb_action=continue', `twin_fb_context=${fallback.context}`, `twin_fb_extension=${fallback.extension}`);
  const byLowerCase = new Map<string, string[]>();
  for (const name of Object.keys(options.transfers)) {
    byLowerCase.set(name.toLowerCase(), [...byLowerCase.get(name.toLowerCase()) ?? [], name]);
  }
  const ambiguous: string[] = [];
  for (const names of byLowerCase.values()) {
    if (names.length > 1) {
      ambiguous.push(...names);
      continue;
    }
    const destination = options.transfers[names[0]!]!;
    vars.push(`twin_xfer_${names[0]}=${destination.context}/${destination.extension}`);
  }
  return { vars, ambiguous };
}

/** The verdict an `event` application's data announces (`Event-Name=CUSTOM,Event-Subclass=twin::…`), if any. */
export function verdictOfEventApp(appData: string | undefined): TransferVerdict | undefined {
  const subclass = /(?:^|,)\s*Event-Subclass=([^,]*)/.exec(appData ?? '')?.[1]?.trim();
  return subclass !== undefined ? VERDICTS[subclass] : undefined;
}

export function verdictOfSubclass(subclass: string | undefined): TransferVerdict | undefined {
  return subclass !== undefined ? VERDICTS[subclass] : undefined;
}

/**
 * Whether the caller was blind-transferred out of the bot's bridge (the bot's REFER, or anyone's
 * transfer without a context): FreeSWITCH adds a `bl_xfer` entry to transfer_history, and the
 * event already carries the new caller profile (s9-refer: Caller-Destination-Number=operator).
 */
export function transferredAway(event: EslEvent, historyBefore: string | undefined): { target: string; context: string } | undefined {
  const history = event.get('variable_transfer_history');
  if (history === undefined || history === historyBefore || !history.includes(':bl_xfer:')) return undefined;
  return { target: printableName(event.get('Caller-Destination-Number') ?? ''), context: event.get('Caller-Context') ?? '' };
}

/** The name the dialplan accepted (TWIN_TRANSFER_TARGET), else what the bot asked for, made printable. */
export function targetOf(event: EslEvent, fallback: string): string {
  const accepted = event.get('variable_TWIN_TRANSFER_TARGET');
  return accepted !== undefined && SAFE_NAME.test(accepted) ? accepted : fallback;
}

/**
 * A Refer-To user is the bot's to choose: outside the names' alphabet, every other character is
 * percent-encoded, so no CR/LF or quote reaches a log line or a JSON body as it is.
 */
export function printableName(raw: string): string {
  if (SAFE_NAME.test(raw)) return raw;
  const encoded = [...raw.slice(0, 80)].map((ch) => /[A-Za-z0-9_+*#.-]/.test(ch)
    ? ch : [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')).join('');
  return encoded === '' ? '(empty)' : encoded;
}

/** Who ended a transferred call: the shipped dialplan marks the calls the destination hung up. */
export function endedByAfterTransfer(event: EslEvent | undefined): EndedBy {
  return event?.get('variable_twin_transfer_ended_by') === 'target' ? 'target' : 'caller';
}
