/**
 * The product's inbound connections to the simulated FreeSWITCH (:8021): auth, `event`/`filter`
 * subscriptions, `api` and `bgapi` with their replies in order, and the events published to them
 * (BACKGROUND_JOB, CHANNEL_HANGUP_COMPLETE, CUSTOM twin::*). Bottom layer of the simulator (see
 * README.md for the layers).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SimulatedPbx } from '../simulated-pbx.js';
import { CORE_UUID, type FsSimOptions } from './channel.js';
import { apiResponse, authRequest, commandReply, CommandReader, disconnectNotice, jsonEvent, plainEvent, type Headers } from './wire.js';

export abstract class InboundConnections extends SimulatedPbx {
  constructor(protected readonly options: FsSimOptions) {
    super(1000);
    this.password = options.password ?? 'ClueCon';
    this.server = createServer((socket) => this.acceptInbound(socket));
  }

  readonly password: string;

  protected readonly server: Server;
  protected readonly inbound = new Set<Socket>();
  /** What each inbound connection asked for: `event <format> <names> [CUSTOM <subclasses>]` and `filter`s. */
  private readonly subscriptions = new Map<Socket, InboundSubscription>();
  protected readonly jobTimers = new Set<NodeJS.Timeout>();

  /** While true, inbound connections are cut as soon as they arrive (FreeSWITCH restarting). */
  restarting = false;
  inboundCommands = 0;
  /** Every command on an inbound connection (auth, event, filter, api ...), as its first line. */
  onInboundCommand?: (line: string) => void;
  /** Holds an inbound connection's `api` reply back this many ms (carried out on arrival; later replies wait behind it). */
  delayInboundApi?: (command: string) => number;

  /** Replies still held back per inbound connection: they go out in order. */
  private readonly heldReplies = new Map<Socket, Promise<void>>();

  dropInbound(): void {
    for (const s of this.inbound) s.destroy();
  }

  private acceptInbound(socket: Socket): void {
    if (this.restarting) return void socket.destroy();
    this.inbound.add(socket);
    socket.setNoDelay(true);
    let authed = false;
    const reader = new CommandReader();
    socket.write(authRequest());
    socket.on('error', () => {});
    socket.on('close', () => {
      this.inbound.delete(socket);
      this.subscriptions.delete(socket);
    });
    socket.on('data', (chunk) => {
      for (const cmd of reader.push(chunk)) {
        this.inboundCommands++;
        this.onInboundCommand?.(cmd.line);
        const [verb = '', ...args] = cmd.line.split(' ');
        if (verb === 'auth') {
          if (args.join(' ') === this.password) {
            authed = true;
            socket.write(commandReply('+OK accepted'));
          } else {
            socket.write(commandReply('-ERR invalid'));
            socket.end(disconnectNotice()); // d1
          }
        } else if (!authed) {
          socket.write(commandReply('-ERR command not found')); // d1b: stays open
        } else if (verb === 'api') {
          this.replyInbound(socket, apiResponse(this.api(args.join(' '))), this.delayInboundApi?.(args.join(' ')) ?? 0);
        } else if (verb === 'bgapi') {
          const jobUuid = cmd.headers.get('job-uuid') ?? randomUUID();
          socket.write(commandReply(`+OK Job-UUID: ${jobUuid}`, [['Job-UUID', jobUuid]]));
          this.backgroundJob(jobUuid, args.join(' '));
        } else if (verb === 'event' || verb === 'myevents') {
          const sub = this.subscription(socket);
          sub.format = args[0] === 'json' ? 'json' : 'plain';
          const names = args.slice(1);
          const custom = names.indexOf('CUSTOM');
          (custom >= 0 ? names.slice(0, custom) : names).forEach((name) => sub.events.add(name));
          if (custom >= 0) names.slice(custom + 1).forEach((subclass) => sub.subclasses.add(subclass));
          socket.write(commandReply(`+OK event listener enabled ${sub.format}`));
        } else if (verb === 'filter') {
          const [header = '', ...value] = args;
          this.subscription(socket).filters.push([header, value.join(' ')]);
          socket.write(commandReply(`+OK filter added. [${header}]=[${value.join(' ')}]`));
        } else if (verb === 'noevents') {
          socket.write(commandReply('+OK no longer listening for events'));
        } else if (verb === 'exit') {
          socket.write(commandReply('+OK bye'));
          socket.end(disconnectNotice());
        } else {
          socket.write(commandReply('-ERR command not found'));
        }
      }
    });
  }

  private subscription(socket: Socket): InboundSubscription {
    let sub = this.subscriptions.get(socket);
    if (!sub) this.subscriptions.set(socket, (sub = { format: 'plain', events: new Set(), subclasses: new Set(), filters: [] }));
    return sub;
  }

  private replyInbound(socket: Socket, bytes: string, delayMs: number): void {
    const held = this.heldReplies.get(socket);
    if (delayMs <= 0 && !held) return void socket.write(bytes);
    const next = (held ?? Promise.resolve())
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, delayMs)))
      .then(() => { if (!socket.destroyed) socket.write(bytes); });
    this.heldReplies.set(socket, next);
    void next.then(() => { if (this.heldReplies.get(socket) === next) this.heldReplies.delete(socket); });
  }

  /** An event to every inbound connection that subscribed to it and whose filters let it through. */
  protected publishInbound(headers: Headers, body?: string): void {
    for (const [socket, sub] of this.subscriptions) {
      if (socket.destroyed || !inboundWants(sub, headers)) continue;
      socket.write(sub.format === 'json' ? jsonEvent(headers, body) : plainEvent(headers, body));
    }
  }

  protected finishJob(jobUuid: string, command: string, arg: string, body: string): void {
    const headers: Headers = [
      ['Event-Name', 'BACKGROUND_JOB'], ['Core-UUID', CORE_UUID], ['FreeSWITCH-Hostname', 'fslab'],
      ['Event-Date-Timestamp', String(Date.now() * 1000)], ['Event-Calling-File', 'mod_event_socket.c'],
      ['Job-UUID', jobUuid], ['Job-Command', command], ['Job-Command-Arg', arg],
    ];
    this.publishInbound(headers, body);
  }

  protected later0(fn: () => void, ms: number): void {
    const timer = setTimeout(() => { this.jobTimers.delete(timer); fn(); }, ms);
    this.jobTimers.add(timer);
  }

  // Done by the layers above: api-commands.ts.
  protected abstract api(line: string): string;
  protected abstract backgroundJob(jobUuid: string, line: string): void;
}

interface InboundSubscription {
  format: 'json' | 'plain';
  /** Event names (BACKGROUND_JOB, CHANNEL_HANGUP_COMPLETE, ALL ...) and CUSTOM subclasses. */
  events: Set<string>;
  subclasses: Set<string>;
  /** `filter <header> <value>`: with any filter, an event passes only if one of them matches. */
  filters: [string, string][];
}

function inboundWants(sub: InboundSubscription, headers: Headers): boolean {
  const get = (name: string) => headers.find(([n]) => n === name)?.[1];
  const name = get('Event-Name') ?? '';
  const subscribed = name === 'CUSTOM' ? sub.subclasses.has(get('Event-Subclass') ?? '') : sub.events.has(name) || sub.events.has('ALL');
  return subscribed && (sub.filters.length === 0 || sub.filters.some(([header, value]) => get(header) === value));
}

export function customEvent(subclass: string, uuid: string): Headers {
  return [['Event-Name', 'CUSTOM'], ['Core-UUID', CORE_UUID], ['Event-Subclass', subclass], ['Unique-ID', uuid]];
}
