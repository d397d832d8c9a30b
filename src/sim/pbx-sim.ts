/**
 * One face for both PBX simulators, so the end-to-end cases, the demo and the benchmark are
 * written once and run against Asterisk (ARI) and FreeSWITCH (ESL).
 */
import type { BotBehaviour, CallSpec, PersonBehaviour, SimCall, SimDial, SimInvite } from './call-model.js';
import type { AriSimulator } from './asterisk/ari-sim.js';
import type { FreeSwitchSimulator } from './freeswitch/esl-sim.js';

export type PbxKind = 'asterisk' | 'freeswitch';

export interface PbxSim {
  readonly kind: PbxKind;
  /** What the dialplan line looks like, for the demo's output. */
  describeEntry(hints: Record<string, string>): string;
  placeCall(spec?: CallSpec): SimCall;
  setBotBehaviour(behaviour: (invite: SimInvite) => BotBehaviour): void;
  /** How the person behind a transfer destination (context, extension) behaves. */
  setPersonBehaviour(behaviour: (context: string, extension: string) => PersonBehaviour): void;
  /** How subscribers the product dials (originate) behave, by number. */
  setSubscriberBehaviour(behaviour: (number: string) => BotBehaviour): void;
  /** Subscribers the product dialled, in order. */
  readonly dials: SimDial[];
  readonly invites: SimInvite[];
  /** A channel variable of a caller still in the PBX (TWIN_STATUS ...). */
  channelVar(callId: string, name: string): string | undefined;
  holding(callId: string): 'ring' | 'moh' | 'none' | undefined;
  /** The trunk state the product published: Asterisk's Custom: device state / FreeSWITCH's global variable. */
  trunkState(): string | undefined;
  /** Channels, bridges or sockets of ours the PBX still holds. */
  leftovers(): string[];
  /** ARI requests / ESL commands so far that concerned this caller. */
  requestsFor(callId: string): number;
  /** Whether the product was told about this caller (StasisStart delivered / `connect` received). */
  wasAnnounced(callId: string): boolean;
  /** Cut the product's connections from the PBX's side. */
  dropConnections(): void;
}

export function asteriskSim(ari: AriSimulator, deviceState = 'twin-trunk'): PbxSim {
  const args = (hints: Record<string, string>) => Object.entries(hints).map(([k, v]) => `${k}=${v}`);
  return {
    kind: 'asterisk',
    describeEntry: (hints) => `Ringing(); Stasis(twin${args(hints).map((a) => `,${a}`).join('')})`,
    placeCall: (spec = {}) => ari.placeCall({ number: spec.number, name: spec.name, dialed: spec.dialed, args: args(spec.hints ?? {}), stasisLagMs: spec.handoverLagMs }),
    setBotBehaviour: (b) => { ari.botBehaviour = b; },
    setPersonBehaviour: (b) => { ari.personBehaviour = b; },
    setSubscriberBehaviour: (b) => { ari.subscriberBehaviour = b; },
    dials: ari.dials,
    invites: ari.invites,
    channelVar: (id, name) => ari.channel(id)?.vars.get(name),
    holding: (id) => {
      const ch = ari.channel(id);
      return ch === undefined ? undefined : ch.moh ? 'moh' : ch.ringing ? 'ring' : 'none';
    },
    trunkState: () => ari.deviceState(`Custom:${deviceState}`),
    leftovers: () => {
      const left = ari.leftovers();
      return [...left.channels.map((c) => `channel ${c}`), ...left.bridges.map((b) => `bridge ${b}`)];
    },
    requestsFor: (id) => ari.requestsNaming(id),
    wasAnnounced: (id) => ari.wasAnnounced(id),
    dropConnections: () => ari.dropWebSockets(),
  };
}

export function freeswitchSim(fs: FreeSwitchSimulator, trunkVariable = 'twin_trunk'): PbxSim {
  return {
    kind: 'freeswitch',
    describeEntry: (hints) => [...Object.entries(hints).map(([k, v]) => `set twin_${k}=${v}; `), `set twin_next_step=not_taken; answer; socket ${fs.socketTarget.host}:${fs.socketTarget.port} full; bridge ${'${twin_bot_dial}'}; transfer ${'${twin_next_step}'} XML twin-after-socket`].join(''),
    placeCall: (spec = {}) => fs.placeCall(spec),
    setBotBehaviour: (b) => { fs.botBehaviour = b; },
    setPersonBehaviour: (b) => { fs.personBehaviour = ({ context, extension }) => b(context, extension); },
    setSubscriberBehaviour: (b) => { fs.subscriberBehaviour = b; },
    dials: fs.dials,
    invites: fs.invites,
    channelVar: (id, name) => fs.channel(id)?.vars.get(name),
    holding: (id) => {
      const ch = fs.channel(id);
      return ch === undefined ? undefined : ch.playing ?? 'none';
    },
    trunkState: () => fs.globals.get(trunkVariable),
    leftovers: () => fs.leftovers(),
    requestsFor: (id) => fs.commands.get(id) ?? 0,
    wasAnnounced: (id) => fs.wasAnnounced(id),
    dropConnections: () => fs.dropOutboundSockets(),
  };
}
