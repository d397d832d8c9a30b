/**
 * Bridges of the simulated Asterisk: the product's mixing bridge, channels entering and leaving it,
 * and its destruction (BridgeDestroyed only after a hangup inside, recording h1).
 */
import { bridgeJson, channelJson, inStasis, type SimBridge, type SimChannel } from './model.js';
import { AriChannels } from './channels.js';

const BRIDGE_TYPES = new Set(['mixing', 'holding', 'dtmf_events', 'proxy_media', 'video_sfu', 'video_single', 'sdp_label']);

export abstract class AriBridges extends AriChannels {
  protected createBridge(id: string, q: URLSearchParams): [number, unknown] {
    const type = q.get('type') ?? 'mixing';
    if (!type.split(',').every((t) => BRIDGE_TYPES.has(t))) {
      return [500, { message: "Unable to create bridge. Possible duplicate bridge id '(null)'" }];
    }
    const bridge: SimBridge = { id, name: q.get('name') ?? '', channels: [], hadHangupInside: false };
    this.bridges.set(id, bridge);
    return [200, bridgeJson(bridge)];
  }

  protected addChannels(b: SimBridge, q: URLSearchParams): [number, unknown] {
    const ids = (q.get('channel') ?? '').split(',').filter(Boolean);
    if (ids.length === 0) return [400, { message: 'Missing parameter channel' }];
    const chans = ids.map((id) => this.channels.get(id));
    if (chans.some((c) => c === undefined)) return [400, { message: 'Channel not found' }];
    if (chans.some((c) => !inStasis(c!))) return [422, { message: 'Channel not in Stasis application' }];
    this.afterReply.push(() => {
      for (const ch of chans as SimChannel[]) {
        if (!this.channels.has(ch.id)) continue;
        this.leaveBridge(ch);
        ch.bridgeId = b.id;
        b.channels.push(ch.id);
        this.emit(ch.app, 'ChannelEnteredBridge', { bridge: bridgeJson(b), channel: channelJson(ch) });
        this.emitVarset(ch, 'BRIDGEPEER', '');
        this.emitVarset(ch, 'BRIDGEPVTCALLID', '');
      }
    });
    return [204, undefined];
  }

  protected removeChannel(b: SimBridge, q: URLSearchParams): [number, unknown] {
    const ch = this.channels.get(q.get('channel') ?? '');
    if (!ch) return [400, { message: 'Channel not found' }];
    this.leaveBridge(ch);
    return [204, undefined];
  }

  protected leaveBridge(ch: SimChannel): void {
    const b = ch.bridgeId ? this.bridges.get(ch.bridgeId) : undefined;
    ch.bridgeId = undefined;
    if (!b) return;
    b.channels = b.channels.filter((c) => c !== ch.id);
    this.emit(ch.app, 'ChannelLeftBridge', { bridge: bridgeJson(b), channel: channelJson(ch) });
  }

  protected destroyBridge(b: SimBridge): [number, unknown] {
    for (const id of [...b.channels]) {
      const ch = this.channels.get(id);
      if (ch) this.leaveBridge(ch);
    }
    this.bridges.delete(b.id);
    // BridgeDestroyed only reaches the app when a channel was hung up inside (fixture h1).
    if (b.hadHangupInside) {
      const app = [...this.apps.keys()][0];
      this.afterReply.push(() => this.emit(app, 'BridgeDestroyed', { bridge: bridgeJson(b) }));
    }
    return [204, undefined];
  }
}
