/**
 * Bridges an earlier run of the product left in Asterisk (it was restarted, or crashed, while calls
 * were bridged). Asterisk keeps such calls going, but nobody would end the call when one side hangs
 * up: the other would sit alone in the bridge, in silence. After each (re)connection the driver
 * hands us its bridges named `twin-…` that no call of this run owns; we end each one with its call,
 * and tell the driver (`onEnded`), which counts the call if the earlier run never did.
 */
import type { Logger } from '../../log.js';
import type { AriRest } from './ari-rest.js';

export interface AriBridge {
  id: string;
  channels?: string[];
}

const OUR_BRIDGE = /^twin-(.+)$/;

export class LeftoverBridges {
  /** Channel id → the leftover bridge it is in. */
  private readonly byChannel = new Map<string, { bridgeId: string; channels: string[] }>();
  /** While the bridges are being listed: channels that left meanwhile (the list may still show them). */
  private goneWhileLooking?: Set<string>;

  /**
   * `onEnded(callerId, left, seen)`: the call of bridge `twin-<callerId>` is over; `left` hung up
   * first (the caller, or its partner: the bot, or the person it was transferred to); `seen` is
   * false when that happened before this run saw the bridge.
   */
  constructor(
    private readonly rest: () => AriRest, private readonly log: Logger,
    private readonly onEnded: (callerId: string, left: 'caller' | 'partner', seen: boolean) => void = () => {},
  ) {}

  /** Call before listing the bridges for adopt(). */
  lookingAtBridges(): void {
    this.goneWhileLooking = new Set();
  }

  /** A channel sitting in a leftover bridge: not a stranded caller to pick up. */
  has(channelId: string): boolean {
    return this.byChannel.has(channelId);
  }

  /**
   * Takes the bridges nobody in this run owns: a call still in one is watched; a lone channel
   * (its partner is gone) is hung up; an empty one is destroyed (its caller, if still there, is
   * picked up next and makes its own). `inOurApp` tells channels of this daemon's Stasis app from a
   * dialer's (`twin call`), whose bridges are named alike and are its own business.
   */
  async adopt(bridges: AriBridge[], owned: (bridgeId: string) => boolean, alive: Set<string>, inOurApp: (channelId: string) => boolean): Promise<void> {
    const gone = this.goneWhileLooking ?? new Set<string>();
    this.goneWhileLooking = undefined;
    const emptied: Promise<void>[] = [];
    for (const bridge of bridges) {
      const callerId = OUR_BRIDGE.exec(bridge.id)?.[1];
      if (callerId === undefined || owned(bridge.id)) continue;
      const listed = bridge.channels ?? [];
      const channels = listed.filter((id) => !gone.has(id));
      if (channels.length >= 2 && channels.some(inOurApp)) {
        const entry = { bridgeId: bridge.id, channels };
        for (const id of channels) this.byChannel.set(id, entry);
        this.log.info({ bridge: bridge.id }, 'watching a call bridged by an earlier run, to end it when one side hangs up');
      } else if (channels.length === 1 && inOurApp(channels[0]!)) {
        this.log.warn({ bridge: bridge.id, channel: channels[0] }, 'a channel is alone in a bridge left by an earlier run; hanging it up');
        emptied.push(this.end(bridge.id, channels));
        this.onEnded(callerId, channels[0] === callerId ? 'partner' : 'caller', listed.length > 1);
      } else if (channels.length === 0 && (!alive.has(callerId) || inOurApp(callerId) || listed.length > 0)) {
        emptied.push(this.end(bridge.id, []));
        if (listed.length > 0) this.onEnded(callerId, gone.has(callerId) ? 'caller' : 'partner', true);
      }
    }
    await Promise.all(emptied);
  }

  /** One side of a watched call left: hang up the other and destroy the bridge. */
  onChannelGone(channelId: string): void {
    const entry = this.byChannel.get(channelId);
    if (!entry) return void this.goneWhileLooking?.add(channelId);
    for (const id of entry.channels) this.byChannel.delete(id);
    void this.end(entry.bridgeId, entry.channels.filter((id) => id !== channelId));
    const callerId = OUR_BRIDGE.exec(entry.bridgeId)![1]!;
    this.onEnded(callerId, channelId === callerId ? 'caller' : 'partner', true);
  }

  private async end(bridgeId: string, channels: string[]): Promise<void> {
    const rest = this.rest();
    const ignore = () => {};
    await Promise.all([...channels.map((id) => rest.hangup(id).catch(ignore)), rest.destroyBridge(bridgeId).catch(ignore)]);
  }
}
