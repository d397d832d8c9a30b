/**
 * ESL bytes as a real FreeSWITCH 1.10.12 writes them (shared/fixtures/freeswitch/README.md, "ESL wire
 * formats observed"): `\n` line ends, Content-Length before Content-Type on events, a header-only
 * URL-encoded CHANNEL_DATA dump as the outbound `connect` reply, bodiless command/replies.
 */

export type Headers = [string, string][];

const GOODBYE = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';
/** What switch_url_encode escapes; `,` `/` `(` `)` `-` `_` `.` stay as they are (fixture quirk 3). */
const URL_UNSAFE = /[\0-\x20\x7f-\uffff"#%&+:;<=>?@[\\\]^`{|}']/gu;

export function fsUrlEncode(value: string): string {
  return value.replace(URL_UNSAFE, (ch) =>
    [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

function encodedLines(headers: Headers): string {
  return headers.map(([name, value]) => `${name}: ${fsUrlEncode(value)}\n`).join('');
}

export function commandReply(text: string, extra: Headers = []): string {
  return `Content-Type: command/reply\nReply-Text: ${text}\n${extra.map(([n, v]) => `${n}: ${v}\n`).join('')}\n`;
}

export function apiResponse(body: string): string {
  return `Content-Type: api/response\nContent-Length: ${Buffer.byteLength(body)}\n\n${body}`;
}

export function authRequest(): string {
  return 'Content-Type: auth/request\n\n';
}

/**
 * The outbound `connect` reply: the channel's data in the header block itself, no Content-Length.
 * `socket host:port` without `async` runs in static mode (recordings s8-outbound-static-socket, and
 * h1 for `socket host:port full`, the shipped dialplan's).
 */
export function connectReply(channelData: Headers, mode: SocketMode = 'async', full = mode === 'async'): string {
  const modeLines = `Socket-Mode: ${mode}\nControl: ${full ? 'full' : 'single-channel'}`;
  return `${encodedLines(channelData)}Content-Type: command/reply\nReply-Text: %2BOK%0A\n${modeLines}\n\n`;
}

export type SocketMode = 'async' | 'static';

/** The mode the `socket` application runs in for its argument `host:port [async] [full]`. */
export function socketMode(arg: string): SocketMode {
  return arg.split(' ').includes('async') ? 'async' : 'static';
}


/**
 * How FreeSWITCH splits an API command's arguments (switch_separate_string on ' ',
 * src/switch_utils.c): on spaces outside single quotes; quotes are then removed and `\x` unescaped.
 * So `originate {…}dial &socket(h:p async full)` gives `&socket(h:p` as the application.
 */
export function splitApiArgs(line: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) {
      current += line[++i];
      started = true;
    } else if (ch === "'") {
      quoted = !quoted;
      started = true;
    } else if (ch === ' ' && !quoted) {
      if (started) tokens.push(current);
      current = '';
      started = false;
    } else {
      current += ch;
      started = true;
    }
  }
  if (started) tokens.push(current);
  return tokens;
}

/**
 * switch_separate_string on another delimiter than ' ' (src/switch_utils.c, as uuid_setvar_multi
 * splits its `a=b;c=d`): split outside single quotes (a `'` counts only if another follows), a
 * backslash keeps the next character from splitting; then each part loses its quotes and leading
 * and trailing spaces, and `\'` `\"` `\\` `\<delimiter>` are unescaped (fixture h1).
 */
export function fsSeparateString(text: string, delimiter: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\') i++;
    else if (ch === "'" && (quoted || text.indexOf("'", i + 1) >= 0)) quoted = !quoted;
    else if (ch === delimiter && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((part) => cleanupSeparated(part, delimiter));
}

function cleanupSeparated(part: string, delimiter: string): string {
  let out = '';
  let quoted = false;
  const trimmed = part.replace(/^ +/, '');
  for (let i = 0; i < trimmed.length; i++) {
    const ch = trimmed[i]!;
    const next = trimmed[i + 1];
    if (ch === '\\' && next !== undefined && ["'", '"', '\\', delimiter].includes(next)) {
      out += next;
      i++;
    } else if (ch === "'" && (quoted || trimmed.indexOf("'", i + 1) >= 0)) {
      quoted = !quoted;
    } else out += ch;
  }
  return quoted ? out : out.replace(/ +$/, '');
}

/** originate's `&app(arg)`: the application and its argument, cut at the first `)` as FreeSWITCH does. */
export function originateApp(exten: string): { app: string; arg: string } | undefined {
  if (!exten.startsWith('&') || exten.length < 2) return undefined;
  let name = exten.slice(1);
  const close = name.indexOf(')');
  if (close >= 0) name = name.slice(0, close);
  const open = name.indexOf('(');
  return open >= 0 ? { app: name.slice(0, open), arg: name.slice(open + 1) } : { app: name, arg: '' };
}

export function plainEvent(headers: Headers, body?: string): string {
  let payload = encodedLines(headers);
  payload += body === undefined ? '\n' : `Content-Length: ${Buffer.byteLength(body)}\n\n${body}`;
  return `Content-Length: ${Buffer.byteLength(payload)}\nContent-Type: text/event-plain\n\n${payload}`;
}

export function jsonEvent(headers: Headers, body?: string): string {
  const object: Record<string, string> = Object.fromEntries(headers);
  if (body !== undefined) {
    object['Content-Length'] = String(Buffer.byteLength(body));
    object._body = body;
  }
  const payload = JSON.stringify(object);
  return `Content-Length: ${Buffer.byteLength(payload)}\nContent-Type: text/event-json\n\n${payload}`;
}

/** Sent when the channel hangs up while the app asked to linger; Channel-Name is not URL-encoded. */
export function lingerNotice(uuid: string, channelName: string, lingerTime: number): string {
  return `Content-Type: text/disconnect-notice\nControlled-Session-UUID: ${uuid}\nContent-Disposition: linger\n`
    + `Channel-Name: ${channelName}\nLinger-Time: ${lingerTime}\nContent-Length: 0\n\n`;
}

/** Written before FreeSWITCH closes a connection; outbound ones name the controlled session. */
export function disconnectNotice(uuid?: string): string {
  const session = uuid ? `Controlled-Session-UUID: ${uuid}\nContent-Disposition: disconnect\n` : '';
  return `Content-Type: text/disconnect-notice\n${session}Content-Length: ${Buffer.byteLength(GOODBYE)}\n\n${GOODBYE}`;
}

export interface AppCommand {
  /** The first line, e.g. `api uuid_getvar <uuid> x` or `sendmsg`. */
  line: string;
  /** Header lines after it (sendmsg's call-command, execute-app-name, ...), names lower-cased. */
  headers: Map<string, string>;
  /** The Content-Length bytes after the header block, if any (a sendmsg's text/plain argument). */
  body?: string;
}

/** Splits what an ESL client writes into commands: a block of lines ended by an empty line, and its body. */
export class CommandReader {
  private pending = Buffer.alloc(0);

  push(chunk: Buffer): AppCommand[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    const commands: AppCommand[] = [];
    for (let end = this.pending.indexOf('\n\n'); end >= 0; end = this.pending.indexOf('\n\n')) {
      const block = this.pending.subarray(0, end).toString('utf8').replace(/\r/g, '');
      const [line = '', ...rest] = block.split('\n');
      const headers = new Map<string, string>();
      for (const h of rest) {
        const colon = h.indexOf(':');
        if (colon > 0) headers.set(h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim());
      }
      const length = Number(headers.get('content-length') ?? 0);
      if (this.pending.length < end + 2 + length) break; // the body is still arriving
      const body = length > 0 ? this.pending.subarray(end + 2, end + 2 + length).toString('utf8') : undefined;
      this.pending = this.pending.subarray(end + 2 + length);
      if (line.trim() === '' && rest.length === 0) continue; // FreeSWITCH skips blank lines between commands
      commands.push({ line: line.trim(), headers, ...(body !== undefined ? { body } : {}) });
    }
    return commands;
  }
}

/**
 * A dial string's `{a=b,c='d,e'}[f=g]endpoint` → variables and endpoint. Single quotes protect
 * commas, as in FreeSWITCH's own separator.
 */
export function parseDialString(dial: string): { vars: Map<string, string>; endpoint: string } {
  const vars = new Map<string, string>();
  let rest = dial.trim();
  while (rest.startsWith('{') || rest.startsWith('[') || rest.startsWith('<')) {
    const close = { '{': '}', '[': ']', '<': '>' }[rest[0] as '{' | '[' | '<'];
    const end = findUnquoted(rest, close, 1);
    if (end < 0) break;
    for (const pair of splitUnquoted(rest.slice(1, end), ',')) {
      const eq = pair.indexOf('=');
      if (eq > 0) vars.set(pair.slice(0, eq).trim(), unquote(pair.slice(eq + 1).trim()));
    }
    rest = rest.slice(end + 1);
  }
  return { vars, endpoint: rest.trim() };
}

function findUnquoted(text: string, ch: string, from: number): number {
  let quoted = false;
  for (let i = from; i < text.length; i++) {
    if (text[i] === "'") quoted = !quoted;
    else if (text[i] === ch && !quoted) return i;
  }
  return -1;
}

function splitUnquoted(text: string, sep: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = findUnquoted(text, sep, 0); i >= 0; i = findUnquoted(text, sep, start)) {
    parts.push(text.slice(start, i));
    start = i + 1;
  }
  parts.push(text.slice(start));
  return parts;
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith("'") && value.endsWith("'") ? value.slice(1, -1) : value;
}
