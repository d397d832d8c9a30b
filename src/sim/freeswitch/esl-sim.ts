/**
 * FreeSWITCH simulator: the ESL side of a FreeSWITCH 1.10.12 on loopback, built from the recordings
 * in shared/fixtures/freeswitch (see its README, "Quirks a fake server should reproduce").
 *
 * - Outbound: placeCall() runs the shipped dialplan-twin.xml: twin_next_step=not_taken, `answer`,
 *   `socket host:port full` (static), `bridge ${twin_bot_dial}`, then `transfer ${twin_next_step}
 *   XML twin-after-socket` (`socket: 'async'`: the dialplan before issue 20, `socket host:port
 *   async full` and the transfer); it answers `connect`, `myevents`, `linger`, `api`, `sendmsg`,
 *   `exit` with the recorded bytes.
 * - Static socket (h1-h7): commands act at once; a sendmsg'd app runs inline, its +OK comes when it
 *   ends and the events it raised after that; later commands wait behind it. Without `linger` the
 *   socket is closed when the caller hangs up. When the product closes it, `socket` returns (once
 *   no app runs) and the dialplan goes on: the bridge to twin_bot_dial, then twin-after-socket
 *   (CHANNEL_BRIDGE, twin::bot_failed, twin::bot_hangup reach inbound connections).
 * - Async socket: sendmsg is acknowledged `+OK` at once, even on a dead channel; apps then run in
 *   order, one at a time (a looping playback holds the queue until `uuid_break`); results arrive
 *   only as events.
 * - A failed bridge hangs up the caller unless `continue_on_fail` is set or the cause is NO_ANSWER.
 * - A bridged call outlives the socket (e1); a socket closed before goes on in the dialplan after it.
 * - Inbound: `auth/request`, `-ERR invalid` + disconnect notice on a bad password, global variables.
 * - A bot's REFER (s9-refer): sofia BYEs the bot and transfers the caller to the Refer-To user in
 *   `force_transfer_context` (else the caller's own context); in twin-transfers the shipped
 *   dialplan's logic runs (dialplan/freeswitch/twin-transfers.xml), with the person's behaviour.
 *
 * This file is its face for tests, the demo and the benchmark; the simulator is built in layers,
 * each file one part of FreeSWITCH (README.md beside this file lists them and what was recorded).
 */
import type { FsChannel, FsSimOptions } from './channel.js';
import { ApiCommands } from './api-commands.js';

export type { FsSimOptions } from './channel.js';
export type { FsPlaceCall } from './dialplan.js';

export class FreeSwitchSimulator extends ApiCommands {
  constructor(options: FsSimOptions = {}) {
    super(options);
  }

  port = 0;

  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  async stop(): Promise<void> {
    for (const ch of this.channels.values()) this.clearTimers(ch);
    this.jobTimers.forEach(clearTimeout);
    for (const ch of this.channels.values()) ch.session?.socket.destroy();
    for (const s of this.inbound) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The bot bridged to this caller sends BYE now (a test's way to make one bot hang up); false if none is bridged. */
  botHangsUp(callId: string): boolean {
    const ch = this.channels.get(callId);
    const bridge = ch?.bot?.state === 'answered' ? ch.running : undefined;
    if (!ch || !bridge || bridge.app !== 'bridge') return false;
    this.botHungUp(ch, bridge);
    return true;
  }

  /** Cut every outbound socket from FreeSWITCH's side, as when the product's host goes away. */
  dropOutboundSockets(): void {
    for (const ch of this.channels.values()) ch.session?.socket.destroy();
  }

  /** Whether the product asked for this channel's data (a caller gone before that is never seen). */
  wasAnnounced(uuid: string): boolean {
    return this.announced.has(uuid);
  }

  channel(uuid: string): FsChannel | undefined {
    return this.channels.get(uuid);
  }

  /** Calls not yet ended, and sockets the product left open after its call ended. */
  leftovers(): string[] {
    const left: string[] = [];
    for (const ch of this.channels.values()) {
      if (ch.state !== 'hungup') left.push(`channel ${ch.name} (${ch.state})`);
      else if (ch.session && !ch.session.closed) left.push(`socket of ${ch.name} still open`);
    }
    return left;
  }

  totalCommands(): number {
    let n = this.inboundCommands;
    for (const v of this.commands.values()) n += v;
    return n;
  }
}
