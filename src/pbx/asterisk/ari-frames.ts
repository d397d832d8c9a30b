/**
 * A guard in front of ari-client's websocket 'message' handler, which throws from inside the
 * websocket's callback — killing the process — on a frame that is not JSON (SyntaxError) and on an
 * event type missing from the api-docs it loaded (TypeError reading 'properties'): an Asterisk
 * newer than its api-docs, a proxy's error page. Such frames are dropped here, with one log line
 * (one per unknown type); a frame ari-client still cannot handle is dropped with one log line.
 * The events the driver uses do not go through ari-client at all (DirectEvents).
 */
import type { Logger } from '../../log.js';

type MessageHandler = (data: unknown, ...rest: unknown[]) => void;

interface WebSocketLike {
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** The parts of ari-client's Client the guard reaches into (client.js: start(), processMessage()). */
export interface GuardedClient {
  _ws?: WebSocketLike;
  _swagger?: { apis?: { events?: { models?: Record<string, unknown> } } };
}

/** `{"type":"StasisStart",…`: the event type as Asterisk writes it, first. */
const LEADING_TYPE = /^\{\s*"type"\s*:\s*"([A-Za-z0-9_]{1,64})"/;

/** Distinct unknown types remembered (each logged once); beyond this they are dropped silently. */
const MAX_UNKNOWN_TYPES = 100;

/**
 * Events of these types skip ari-client: parsed once and handed to `deliver` as plain objects.
 * ari-client would parse each frame again and build a resource object per channel in it, with
 * every ARI operation attached (lodash): ~15 % of the product's CPU per call on real Asterisk,
 * for objects the driver never uses.
 */
export interface DirectEvents {
  types: ReadonlySet<string>;
  deliver: (event: { type: string }) => void;
}

/**
 * ari-client creates a new websocket on each (re)connect and attaches its handlers right away:
 * the guard wraps every socket assigned to `client._ws` before any frame can arrive.
 */
export function guardEventFrames(client: GuardedClient, log: Logger, direct?: DirectEvents): void {
  const guard = new FrameGuard(() => client._swagger?.apis?.events?.models ?? {}, log, direct);
  let current = client._ws;
  Object.defineProperty(client, '_ws', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (ws: WebSocketLike) => {
      current = ws;
      guard.wrapSocket(ws);
    },
  });
}

class FrameGuard {
  private readonly unknownTypes = new Set<string>();

  constructor(private readonly models: () => Record<string, unknown>, private readonly log: Logger, private readonly direct?: DirectEvents) {}

  wrapSocket(ws: WebSocketLike): void {
    const on = ws.on.bind(ws);
    ws.on = (event: string, listener: (...args: never[]) => void) =>
      on(event, event === 'message' ? this.wrapHandler(listener as MessageHandler) : listener);
  }

  private wrapHandler(handler: MessageHandler): MessageHandler {
    return (data, ...rest) => {
      const text = String(data);
      const leading = LEADING_TYPE.exec(text)?.[1];
      if (leading !== undefined && this.direct?.types.has(leading)) return this.deliverDirect(text, leading);
      const type = this.knownType(text, leading);
      if (type === undefined) return;
      try {
        handler(data, ...rest);
      } catch (err) {
        // The error may quote the frame: only its kind and the event type are logged.
        this.log.error({ err: (err as Error).name, type }, 'ari-client could not handle an ARI event; dropped');
      }
    };
  }

  private deliverDirect(text: string, type: string): void {
    let event: { type: string };
    try {
      event = JSON.parse(text) as { type: string };
    } catch {
      this.log.warn({ bytes: text.length }, 'ARI sent an event frame that is not JSON; dropped');
      return;
    }
    try {
      this.direct!.deliver(event);
    } catch (err) {
      this.log.error({ err: (err as Error).name, type }, 'an ARI event could not be handled; dropped');
    }
  }

  /**
   * The frame's event type when ari-client can dispatch it; undefined (logged) when it must be
   * dropped. `leading`: the type as Asterisk writes it, first (read without parsing the frame;
   * a frame that is not JSON after all throws inside ari-client, within the try of wrapHandler).
   */
  private knownType(text: string, leading: string | undefined): string | undefined {
    const type = leading ?? this.parsedType(text);
    if (type === undefined) return undefined;
    if (Object.hasOwn(this.models(), type)) return type;
    if (!this.unknownTypes.has(type) && this.unknownTypes.size < MAX_UNKNOWN_TYPES) {
      this.unknownTypes.add(type);
      this.log.warn({ type: type.slice(0, 64) }, 'ARI sent an event type missing from its api-docs; dropped (logged once per type)');
    }
    return undefined;
  }

  /** The type of a frame whose first key is not "type" (or that is not JSON: undefined, logged). */
  private parsedType(text: string): string | undefined {
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      this.log.warn({ bytes: text.length }, 'ARI sent an event frame that is not JSON; dropped');
      return undefined;
    }
    const type = typeof event === 'object' && event !== null ? (event as { type?: unknown }).type : undefined;
    if (typeof type !== 'string') {
      this.log.warn('ARI sent an event frame without a type; dropped');
      return undefined;
    }
    return type;
  }
}
