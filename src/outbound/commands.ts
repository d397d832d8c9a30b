/**
 * The CLI's `call` and `campaign`: a dialer beside the daemon (its own Stasis app / call-socket
 * port, see DaemonOptions.role) that prints progress and outcomes in plain words.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { Daemon } from '../daemon.js';
import { campaignFiles, readCampaign, writeResults, type CampaignRow } from './campaign-file.js';
import type { CampaignLimits, CampaignSummary } from './campaign.js';
import { Journal, type JournalWriteError } from './journal.js';
import type { CallState, OutboundResult, OutboundStatus } from './outbound.js';
import { defaultWayOut, parseCallRequest, type CallRequest, type CallRequestInput } from './request.js';

const CONNECT_TIMEOUT_MS = 10_000;

export interface Output {
  line(text: string): void;
  /** A status line redrawn in place (terminals only). */
  status?(text: string): void;
}

/** Exit codes: 0 connected, 1 any other outcome, 2 bad input (thrown before any dial). */
/** Exit codes: 0 connected, 1 any other outcome. Ctrl-C (`stopSignal`) hangs the call up. */
export async function runCall(config: Config, log: Logger, input: CallRequestInput, out: Output, stopSignal?: AbortSignal): Promise<number> {
  const request = parseCallRequest(input, config);
  const daemon = await startDialer(config, log, request.pbx);
  stopSignal?.addEventListener('abort', () => {
    out.line('stopping: hanging up the call');
    void daemon.stop(0);
  }, { once: true });
  try {
    const id = randomUUID();
    daemon.outbound.on('progress', (p: { id: string; state: CallState }) => {
      if (p.id === id && p.state !== 'ended') out.line(describeState(p.state, request.to));
    });
    const { result } = daemon.placeCall(request, id);
    const r = await result;
    out.line(`outcome: ${describeResult(r)}`);
    return r.status === 'connected' ? 0 : 1;
  } finally {
    await daemon.stop();
  }
}

export interface CampaignCommand {
  file: string;
  results?: string;
  journal?: string;
  pbx?: CallRequest['pbx'];
  limits: Partial<CampaignLimits>;
}

/**
 * Exit codes: 0 every row has an outcome, 1 stopped before the end or the journal could not be
 * written (run again to resume). Another run on the same journal: JournalLockedError, nobody dialled.
 */
export async function runCampaign(config: Config, log: Logger, cmd: CampaignCommand, out: Output, stopSignal: AbortSignal): Promise<number> {
  const rows = readCampaign(cmd.file, config, { pbx: cmd.pbx });
  const journal = new Journal(cmd.journal ?? campaignFiles(cmd.file).journal);
  try {
    return await dialCampaign(config, log, cmd, rows, journal, out, stopSignal);
  } finally {
    journal.close(); // after the results are written, so the next run reads them whole
  }
}

async function dialCampaign(config: Config, log: Logger, cmd: CampaignCommand, rows: CampaignRow[], journal: Journal, out: Output, stopSignal: AbortSignal): Promise<number> {
  for (const row of rows.filter((r) => r.invalid)) out.line(`skipped ${row.invalid}`);
  const pbx = rows.find((r) => r.request)?.request?.pbx ?? cmd.pbx ?? defaultWayOut(config);
  const daemon = await startDialer(config, log, pbx);
  const limits: CampaignLimits = {
    concurrency: cmd.limits.concurrency ?? config.outbound.concurrency,
    callsPerSecond: cmd.limits.callsPerSecond ?? config.outbound.calls_per_second,
    batchSize: cmd.limits.batchSize ?? config.outbound.batch_size,
  };
  const campaign = daemon.campaign(rows, journal, limits);
  const lineOf = new Map(rows.map((r) => [r.key, r.line]));
  campaign.on('result', (key: string, r: OutboundResult) => {
    if (!out.status) out.line(`line ${lineOf.get(key)}: ${r.to} ${describeResult(r)}`);
  });
  campaign.on('paused', (until: number, reason: string) =>
    out.line(`paused: ${reason}; Twin's trunk is throttled until ${new Date(until).toISOString()}, resuming then`));
  campaign.on('resumed', () => out.line('resumed'));
  campaign.on('journal-failed', (err: JournalWriteError) =>
    out.line(`stopping: ${err.message}; no new calls; waiting for the calls in progress (free some space, then run the same command again to resume)`));
  const onStop = () => {
    out.line('stopping: no new calls; waiting for the calls in progress (run the same command again to resume)');
    campaign.stop();
  };
  stopSignal.addEventListener('abort', onStop, { once: true });
  if (stopSignal.aborted) onStop(); // Ctrl-C while connecting to the PBX
  const redraw = out.status ? setInterval(() => out.status!(progressLine(campaign.summary())), 250) : undefined;
  let summary: CampaignSummary;
  try {
    summary = await campaign.run();
  } finally {
    clearInterval(redraw);
    stopSignal.removeEventListener('abort', onStop);
    await daemon.stop();
  }
  out.status?.(progressLine(summary));
  out.line(`summary: ${summaryLine(summary)}`);
  const written = reportResults(cmd, rows, campaign.results, out);
  return summary.pending === 0 && !campaign.journalError && written ? 0 : 1;
}

/** The results file; on a full disk it may not be writable either, which is said in one line. */
function reportResults(cmd: CampaignCommand, rows: CampaignRow[], results: Map<string, OutboundResult>, out: Output): boolean {
  const path = cmd.results ?? campaignFiles(cmd.file).results;
  try {
    writeResults(path, rows, results);
  } catch (err) {
    out.line(`results: not written to ${path}: ${(err as Error).message}`);
    return false;
  }
  out.line(`results: ${path}`);
  return true;
}

/** Starts a dialer and waits for its PBX; a PBX it cannot reach is an error in plain words. */
async function startDialer(config: Config, log: Logger, pbx: CallRequest['pbx']): Promise<Daemon> {
  if (pbx === 'twilio') return startTwilioDialer(config, log);
  const daemon = new Daemon(config, { log, role: 'dialer' });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), CONNECT_TIMEOUT_MS); });
  try {
    const started = await Promise.race([daemon.start().then(() => 'started' as const), timeout]);
    const driver = pbx === 'asterisk' ? daemon.asterisk : daemon.freeswitch;
    if (started === 'timeout' || driver?.state !== 'connected') {
      throw new Error(`cannot place calls: ${pbx} is not reachable (${driver?.lastProblem ?? 'no answer'}); try 'twin-connector check'`);
    }
    return daemon;
  } catch (err) {
    await daemon.stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Twilio has no connection to hold open: its Calls API is reached per call, so a wrong token shows on the first call. */
async function startTwilioDialer(config: Config, log: Logger): Promise<Daemon> {
  const daemon = new Daemon(config, { log, role: 'dialer' });
  try {
    await daemon.start();
    return daemon;
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}

function describeState(state: CallState, to: string): string {
  switch (state) {
    case 'queued': return 'queued';
    case 'warming-up': return 'warming up the Twin session';
    case 'ringing': return `dialling ${to}`;
    case 'connecting': return 'answered; connecting to the bot';
    case 'connected': return 'connected to the bot';
    case 'ended': return 'ended';
  }
}

function describeResult(r: OutboundResult): string {
  const extras = [r.detail, r.twinId ? `twin id ${r.twinId}` : undefined, r.endedBy ? `${r.endedBy} hung up first` : undefined];
  const text = extras.filter(Boolean).join('; ');
  return text ? `${r.status} (${text})` : r.status;
}

function progressLine(s: CampaignSummary): string {
  return `[${s.total - s.pending}/${s.total}] ${summaryLine(s)}`;
}

const STATUS_ORDER: OutboundStatus[] = [
  'connected', 'transferred', 'transfer-failed', 'rejected', 'no-answer', 'busy', 'failed', 'bot-failed', 'abandoned', 'stale',
  'unavailable', 'throttled', 'over-capacity', 'error', 'unknown', 'invalid',
];

function summaryLine(s: CampaignSummary): string {
  const counts = STATUS_ORDER.filter((status) => s.counts[status]).map((status) => `${status} ${s.counts[status]}`).join(', ') || 'nothing yet';
  return `${counts}${s.pending ? `, not yet done ${s.pending}` : ''} (${s.total} rows, ${s.warmupRequests} warm-up requests)`;
}
