/**
 * What the shipped dialplan/freeswitch/twin-transfers.xml does with a caller the bot's REFER sent
 * into context twin-transfers, as the simulator runs it: each dialplan application shows on the
 * caller's socket as CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE, as on the real FreeSWITCH
 * (lab runs of issue 14), and the `event` application's CUSTOM events reach inbound connections.
 */
import type { PersonBehaviour } from '../call-model.js';
import type { FsChannel } from './channel.js';

export const TRANSFERS_CONTEXT = 'twin-transfers';

/** What the simulator lends the dialplan model. */
export interface TransfersHost {
  /** Runs one dialplan application that returns at once: its EXECUTE, `effect`, its EXECUTE_COMPLETE (an `event` app fires its CUSTOM event). */
  runApp(ch: FsChannel, app: string, data: string, effect?: () => void): void;
  /** An application that keeps running (bridge): only its CHANNEL_EXECUTE, for now. */
  appStarted(ch: FsChannel, app: string, data: string): void;
  setVar(ch: FsChannel, name: string, value: string): void;
  unsetVar(ch: FsChannel, name: string): void;
  later(ch: FsChannel, fn: () => void, ms: number): void;
  /** The caller and the person are bridged (CHANNEL_BRIDGE on the caller). */
  bridged(ch: FsChannel): void;
  /** The bridge to the destination returned (CHANNEL_UNBRIDGE, EXECUTE_COMPLETE bridge). */
  unbridged(ch: FsChannel, bridgeData: string): void;
  /** `transfer <extension> XML <context>`: the caller leaves for that place (the test sees `continued`). */
  continueTo(ch: FsChannel, extension: string, context: string): void;
  hangup(ch: FsChannel, cause: string): void;
  personBehaviour(destination: { context: string; extension: string }): PersonBehaviour;
  personRang(ch: FsChannel, destination: { context: string; extension: string }): void;
  /** A person answered: the test sees `transferred`. */
  reached(ch: FsChannel, target: string, destination: { context: string; extension: string }): void;
}

const SAFE_NAME = /^[A-Za-z0-9_+*#.-]{1,80}$/;
const DESTINATION = /^([A-Za-z0-9_+*#.-]+)\/([A-Za-z0-9_+*#.-]+)$/;

/** FreeSWITCH looks channel variables up without regard to case. */
function variable(ch: FsChannel, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of ch.vars) if (key.toLowerCase() === wanted) return value;
  return undefined;
}

/** The caller arrives in twin-transfers with destination_number = the Refer-To user. */
export function runTwinTransfers(ch: FsChannel, name: string, host: TransfersHost): void {
  const mapped = SAFE_NAME.test(name) ? DESTINATION.exec(variable(ch, `twin_xfer_${name}`) ?? '') : null;
  if (!mapped) return refuse(ch, host);
  ring(ch, name, { context: mapped[1]!, extension: mapped[2]! }, host);
}

function refuse(ch: FsChannel, host: TransfersHost): void {
  host.runApp(ch, 'unset', 'force_transfer_context', () => host.unsetVar(ch, 'force_transfer_context'));
  setApp(ch, host, 'twin_transfer_step', 'refused');
  setApp(ch, host, 'TWIN_STATUS', 'TRANSFER_FAILED');
  host.runApp(ch, 'event', 'Event-Name=CUSTOM,Event-Subclass=twin::transfer_refused');
  fallback(ch, host);
}

/** bridge {originate_timeout=${twin_transfer_timeout}}loopback/<extension>/<context>, with the person's behaviour. */
function ring(ch: FsChannel, name: string, destination: { context: string; extension: string }, host: TransfersHost): void {
  host.runApp(ch, 'unset', 'force_transfer_context', () => host.unsetVar(ch, 'force_transfer_context'));
  setApp(ch, host, 'twin_transfer_step', 'ringing');
  setApp(ch, host, 'TWIN_TRANSFER_TARGET', name);
  const timeoutS = Number(variable(ch, 'twin_transfer_timeout') ?? '60') || 60;
  const bridgeData = `{originate_timeout=${timeoutS},loopback_bowout=false}loopback/${destination.extension}/${destination.context}`;
  host.appStarted(ch, 'bridge', bridgeData);
  host.personRang(ch, destination);
  const person = host.personBehaviour(destination);
  const failed = (disposition: string) => () => notTaken(ch, host, bridgeData, disposition);
  if (person.kind === 'no-answer') return host.later(ch, failed('NO_ANSWER'), timeoutS * 1000);
  const afterMs = person.afterMs ?? 5;
  if (afterMs >= timeoutS * 1000) return host.later(ch, failed('NO_ANSWER'), timeoutS * 1000);
  if (person.kind === 'busy') return host.later(ch, failed('USER_BUSY'), afterMs);
  host.later(ch, () => answered(ch, name, destination, person.hangupAfterMs, bridgeData, host), afterMs);
}

/** bridge_pre_execute_aleg_app=execute_extension twin_transfer_answered: TWIN_STATUS, the CUSTOM event, the bridge. */
function answered(
  ch: FsChannel, name: string, destination: { context: string; extension: string }, hangupAfterMs: number | undefined,
  bridgeData: string, host: TransfersHost,
): void {
  host.runApp(ch, 'execute_extension', `twin_transfer_answered XML ${TRANSFERS_CONTEXT}`);
  setApp(ch, host, 'twin_transfer_step', 'bridged');
  setApp(ch, host, 'TWIN_STATUS', 'TRANSFERRED');
  host.runApp(ch, 'event', 'Event-Name=CUSTOM,Event-Subclass=twin::transferred');
  host.bridged(ch);
  host.reached(ch, name, destination);
  if (hangupAfterMs !== undefined) host.later(ch, () => personHungUp(ch, bridgeData, host), hangupAfterMs);
}

/** The bridge returned with the caller still there: twin-transfer-ended marks it and hangs up. */
function personHungUp(ch: FsChannel, bridgeData: string, host: TransfersHost): void {
  host.unbridged(ch, bridgeData);
  host.runApp(ch, 'transfer', `twin_transfer_done XML ${TRANSFERS_CONTEXT}`);
  setApp(ch, host, 'twin_transfer_ended_by', 'target');
  host.hangup(ch, 'NORMAL_CLEARING');
}

/** Nobody took the caller within the timeout (or busy): twin-transfer-failed, then the route's fallback. */
function notTaken(ch: FsChannel, host: TransfersHost, bridgeData: string, disposition: string): void {
  host.setVar(ch, 'originate_disposition', disposition);
  host.unbridged(ch, bridgeData);
  host.runApp(ch, 'transfer', `twin_transfer_done XML ${TRANSFERS_CONTEXT}`);
  setApp(ch, host, 'twin_transfer_step', 'failed');
  setApp(ch, host, 'TWIN_STATUS', 'TRANSFER_FAILED');
  host.runApp(ch, 'event', 'Event-Name=CUSTOM,Event-Subclass=twin::transfer_failed');
  fallback(ch, host);
}

/** twin_fb_action=continue: transfer to twin_fb_extension XML twin_fb_context; otherwise hangup ${twin_fb_cause}. */
function fallback(ch: FsChannel, host: TransfersHost): void {
  if (variable(ch, 'twin_fb_action') === 'continue') {
    const extension = variable(ch, 'twin_fb_extension') ?? '';
    const context = variable(ch, 'twin_fb_context') ?? '';
    host.runApp(ch, 'transfer', `${extension} XML ${context}`);
    return host.continueTo(ch, extension, context);
  }
  const cause = variable(ch, 'twin_fb_cause') || 'NORMAL_CLEARING';
  host.runApp(ch, 'hangup', cause);
  host.hangup(ch, cause);
}

function setApp(ch: FsChannel, host: TransfersHost, name: string, value: string): void {
  host.runApp(ch, 'set', `${name}=${value}`, () => host.setVar(ch, name, value));
}
