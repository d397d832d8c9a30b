/**
 * Asterisk ARI simulator: REST + WebSocket on loopback, serving the api-docs recorded from a real
 * Asterisk 22 so that ari-client connects to it unmodified. It reproduces the recorded behaviours
 * our driver depends on (see shared/fixtures/asterisk/README.md, "Behaviours a faithful fake ARI
 * must reproduce"): events for a created channel before the REST reply, no final Dial event for a
 * failed create+dial (the cause is in ChannelDestroyed), no ChannelDestroyed for a caller that
 * leaves Stasis, app DELETE = cause 32 soft, 409 for Custom: device states, error bodies, and the
 * ChannelVarset noise of a real call (about 33 per call) unless the app filters it out.
 *
 * This file is its face for tests, the demo and the benchmark; the simulator is built in layers,
 * each file one part of Asterisk (README.md beside this file lists them and what was recorded).
 */
import { closeServer, listen } from '../http-util.js';
import type { AriSimOptions, SimChannel } from './model.js';
import { AriRoutes } from './ari-routes.js';

export type { AriSimOptions, BotBehaviour, CallerResult, SimInvite, SimRefer } from './model.js';
export type { SimCall } from '../call-model.js';
export type { PlaceCallOptions } from './dialplan.js';
export { recordedStasisEntryDelay } from './quirks.js';

export class AriSimulator extends AriRoutes {
  constructor(options: AriSimOptions = {}) {
    super(options);
  }

  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<string> {
    this.port = await listen(this.server, port);
    return this.url;
  }

  async stop(): Promise<void> {
    for (const ch of this.channels.values()) ch.timers.forEach(clearTimeout);
    for (const app of this.apps.values()) app.sockets.forEach((ws) => ws.terminate());
    await closeServer(this.server);
  }

  /** Channels and bridges our app still holds: after a test this must be zero. */
  leftovers(): { channels: string[]; bridges: string[] } {
    return {
      channels: [...this.channels.values()].filter((c) => c.app !== undefined || c.role === 'created').map((c) => c.name),
      bridges: [...this.bridges.keys()],
    };
  }

  /** The bot leg the product created for this caller (the latest one), found by its originator. */
  botLegOf(callerId: string): SimChannel | undefined {
    return [...this.channels.values()].filter((ch) => ch.originatorId === callerId && ch.appArgs?.[0] === 'bot').at(-1);
  }

  channel(id: string): SimChannel | undefined {
    return this.channels.get(id);
  }

  /** Whether music on hold plays to this channel's bridge. */
  bridgeMoh(channelId: string): boolean {
    const bridgeId = this.channels.get(channelId)?.bridgeId;
    return (bridgeId ? this.bridges.get(bridgeId)?.moh : undefined) ?? false;
  }

  /** Names of the other channels in this channel's bridge (whom the caller talks to). */
  peersOf(channelId: string): string[] {
    const bridgeId = this.channels.get(channelId)?.bridgeId;
    const bridge = bridgeId ? this.bridges.get(bridgeId) : undefined;
    return (bridge?.channels ?? []).filter((id) => id !== channelId).map((id) => this.channels.get(id)?.name ?? id);
  }

  deviceState(name: string): string | undefined {
    return this.deviceStates.get(name);
  }

  /** Requests whose path or query named this caller (its channel, bridge or bot leg). */
  requestsNaming(callId: string): number {
    return this.byCall.get(callId) ?? 0;
  }

  totalRequests(): number {
    let n = 0;
    for (const v of this.requests.values()) n += v;
    return n;
  }

  /** The bot leg's far end sends BYE (a test's way to make one bot hang up). */
  botHangsUp(channelId: string): void {
    this.remoteHangup(channelId, 'bot');
  }
}
