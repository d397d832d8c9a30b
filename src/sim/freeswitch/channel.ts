/**
 * The simulator's options, a simulated FreeSWITCH channel (the caller, "A-leg") and the headers its events carry, shaped
 * like the recorded ones in shared/fixtures/freeswitch (about 170 header lines per event).
 */
import type { AppCommand, SocketMode, Headers } from './wire.js';
import type { Socket } from 'node:net';
import type { CallerResult, SimInvite } from '../call-model.js';

export interface FsSimOptions {
  password?: string;
  /** Gateway name → proxy host:port, for `sofia/gateway/<name>/<user>` dial strings (default: twin). */
  gateways?: Record<string, string>;
  /** Time between a sendmsg's +OK and the app starting (about 20 ms recorded); 0 in the benchmark. */
  execDelayMs?: number;
}

export const CORE_UUID = 'f43504cf-f76b-4f84-9748-c1165789d7f6';

export interface RunningApp {
  app: string;
  arg: string;
  uuid: string;
  /** Run by the shipped dialplan (twin-after-socket's `bot`), not sent over the socket. */
  inDialplan?: boolean;
  /** Ends the app early (uuid_break) and reports its completion. */
  interrupt?: () => void;
}

export interface BotLeg {
  uuid: string;
  state: 'ringing' | 'answered' | 'gone';
  invite: SimInvite;
  timers: NodeJS.Timeout[];
}

export interface OutboundSession {
  socket: Socket;
  format: 'none' | 'plain' | 'json';
  /** null: no linger; -1: linger until the app closes; n: linger n seconds. */
  linger: number | null;
  closed: boolean;
  /** async: `socket h:p async full`; static: without `async`, replies to sendmsg wait for the app to finish. */
  mode: SocketMode;
  /** `full`: every command is allowed (linger, events); without it (s8) a static socket gets no event. */
  full: boolean;
  /** Static mode: events raised while an app runs inline go out after its reply (h7). */
  heldEvents: string[];
  /** The product half-closed the socket; a static one returns into the dialplan once no app runs (h5). */
  productEnded?: boolean;
  /** Event names turned off with `nixevent`. */
  nixed: Set<string>;
  /** Static mode: the app whose sendmsg reply is outstanding, and the commands queued behind it. */
  waitingFor?: string;
  backlog: AppCommand[];
}

export interface FsChannel {
  uuid: string;
  name: string;
  caller: { name: string; number: string };
  dialed: string;
  /** The caller profile after a blind transfer (the bot's REFER): destination and context; else dialed, public. */
  profile?: { destination: string; context: string };
  answered: boolean;
  /**
   * socket: under the socket app; bot: handed back, in twin-after-socket's `bot` extension (bridging
   * the bot); transferred: running other dialplan (a fallback, twin-transfers); hungup: gone.
   */
  state: 'socket' | 'bot' | 'transferred' | 'hungup';
  /** The shipped dialplan goes on after `socket` with `transfer ${twin_next_step} XML twin-after-socket`. */
  dialplanContinues: boolean;
  /** A uuid_transfer sent while a static socket holds the channel: it takes effect when `socket` returns (p9). */
  pendingTransfer?: { extension: string; context: string };
  /** uuid_break found nothing to break: CF_BREAK stays set, and the next playback ends at once. */
  pendingBreak?: boolean;
  /** uuid_kill was sent: the channel is down, whatever the dialplan would do next. */
  pendingHangup?: string;
  vars: Map<string, string>;
  session?: OutboundSession;
  queue: { app: string; arg: string; uuid: string }[];
  running?: RunningApp;
  playing?: 'ring' | 'moh';
  bot?: BotLeg;
  timers: NodeJS.Timeout[];
  created: number;
  seq: number;
  /** Alternate where the linger notice goes (fixture a1 vs a2): some calls get it right after CHANNEL_HANGUP. */
  earlyLingerNotice: boolean;
  /** Originated through ESL (a subscriber we called), not a caller who called in. */
  originated?: boolean;
  finish: (result: CallerResult) => void;
  /** Performance timestamps for the benchmark. */
  socketAt?: number;
}

/** Variables every recorded channel carries; sent with each event so the event sizes are real. */
const STATIC_VARS: Headers = [
  ['video_media_flow', 'disabled'], ['text_media_flow', 'disabled'], ['sip_local_network_addr', '127.0.0.1'],
  ['sip_network_ip', '127.0.0.1'], ['sip_network_port', '5082'], ['sip_received_ip', '127.0.0.1'],
  ['sip_received_port', '5082'], ['sip_via_protocol', 'udp'], ['sofia_profile_name', 'lab'],
  ['sofia_profile_url', 'sip:mod_sofia@127.0.0.1:5090'], ['recovery_profile_name', 'lab'],
  ['sip_full_via', 'SIP/2.0/UDP 127.0.0.1:5082;branch=z9hG4bK-4796-1-0'], ['sip_req_port', '5090'],
  ['sip_req_host', '127.0.0.1'], ['sip_to_port', '5090'], ['sip_to_host', '127.0.0.1'], ['sip_contact_port', '5082'],
  ['sip_contact_host', '127.0.0.1'], ['sip_subject', 'Performance Test'], ['sip_via_host', '127.0.0.1'],
  ['sip_via_port', '5082'], ['max_forwards', '70'],
  ['switch_r_sdp', 'v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n'],
  ['ep_codec_string', 'CORE_PCM_MODULE.PCMU@8000h@20i@64000b'], ['rtp_use_codec_string', 'PCMU,PCMA'],
  ['remote_video_media_flow', 'inactive'], ['remote_text_media_flow', 'inactive'], ['remote_audio_media_flow', 'sendrecv'],
  ['audio_media_flow', 'sendrecv'], ['rtp_audio_recv_pt', '0'], ['rtp_use_codec_name', 'PCMU'], ['rtp_use_codec_rate', '8000'],
  ['rtp_use_codec_ptime', '20'], ['rtp_use_codec_channels', '1'], ['rtp_last_audio_codec_string', 'PCMU@8000h@20i@1c'],
  ['read_codec', 'PCMU'], ['original_read_codec', 'PCMU'], ['read_rate', '8000'], ['original_read_rate', '8000'],
  ['write_codec', 'PCMU'], ['write_rate', '8000'], ['dtmf_type', 'info'],
  ['rtp_local_sdp_str', 'v=0\r\no=FreeSWITCH 1795253762 1795253763 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 16532 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n'],
  ['local_media_ip', '127.0.0.1'], ['local_media_port', '16532'], ['advertised_media_ip', '127.0.0.1'],
];

function microseconds(ms: number): string {
  return `${Math.floor(ms * 1000)}`;
}

function eventDates(): Headers {
  const now = new Date();
  return [
    ['Core-UUID', CORE_UUID], ['FreeSWITCH-Hostname', 'sim'], ['FreeSWITCH-Switchname', 'sim'],
    ['FreeSWITCH-IPv4', '127.0.0.1'], ['FreeSWITCH-IPv6', '::1'],
    ['Event-Date-Local', now.toISOString().slice(0, 19).replace('T', ' ')],
    ['Event-Date-GMT', now.toUTCString()], ['Event-Date-Timestamp', microseconds(now.getTime())],
  ];
}

const STATE_NUMBERS: Record<string, string> = { CS_ROUTING: '2', CS_EXECUTE: '4', CS_HANGUP: '10', CS_REPORTING: '11' };

/** Event-Name, the fixed event headers, the channel and caller profile, then every variable. */
export function eventHeaders(ch: FsChannel, name: string, channelState: string, extra: Headers = [], trailer: Headers = []): Headers {
  const hungUp = ch.state === 'hungup';
  const answerState = hungUp ? 'hangup' : ch.answered ? 'answered' : 'ringing';
  const callState = channelState === 'CS_REPORTING' ? 'HANGUP' : ch.answered ? 'ACTIVE' : 'RINGING';
  return [
    ['Event-Name', name], ...eventDates(),
    ['Event-Calling-File', 'switch_core_session.c'], ['Event-Calling-Function', 'switch_core_session_exec'],
    ['Event-Calling-Line-Number', '2944'], ['Event-Sequence', String(++ch.seq)],
    ...extra,
    ['Channel-State', channelState], ['Channel-Call-State', callState],
    ['Channel-State-Number', STATE_NUMBERS[channelState] ?? '4'], ['Channel-Name', ch.name], ['Unique-ID', ch.uuid],
    ['Call-Direction', 'inbound'], ['Presence-Call-Direction', 'inbound'], ['Channel-HIT-Dialplan', 'true'],
    ['Channel-Call-UUID', ch.uuid], ['Answer-State', answerState],
    ...(hungUp ? [['Hangup-Cause', ch.vars.get('hangup_cause') ?? 'NORMAL_CLEARING'] as [string, string]] : []),
    ['Channel-Read-Codec-Name', 'PCMU'], ['Channel-Read-Codec-Rate', '8000'], ['Channel-Write-Codec-Name', 'PCMU'],
    ...callerProfile(ch, 'Caller'),
    ...variables(ch),
    ...trailer,
  ];
}

function callerProfile(ch: FsChannel, prefix: string): Headers {
  return [
    [`${prefix}-Direction`, 'inbound'], [`${prefix}-Logical-Direction`, 'inbound'], [`${prefix}-Username`, ch.caller.number],
    [`${prefix}-Dialplan`, 'XML'], [`${prefix}-Caller-ID-Name`, ch.caller.name], [`${prefix}-Caller-ID-Number`, ch.caller.number],
    [`${prefix}-Orig-Caller-ID-Name`, ch.caller.name], [`${prefix}-Orig-Caller-ID-Number`, ch.caller.number],
    [`${prefix}-Network-Addr`, '127.0.0.1'], [`${prefix}-ANI`, ch.caller.number],
    [`${prefix}-Destination-Number`, ch.profile?.destination ?? ch.dialed], [`${prefix}-Unique-ID`, ch.uuid], [`${prefix}-Source`, 'mod_sofia'],
    [`${prefix}-Context`, ch.profile?.context ?? 'public'], [`${prefix}-Channel-Name`, ch.name], [`${prefix}-Profile-Index`, '1'],
    [`${prefix}-Profile-Created-Time`, microseconds(ch.created)], [`${prefix}-Channel-Created-Time`, microseconds(ch.created)],
    [`${prefix}-Channel-Answered-Time`, ch.answered ? microseconds(ch.created) : '0'],
    [`${prefix}-Channel-Hangup-Time`, '0'], [`${prefix}-Channel-Transfer-Time`, '0'], [`${prefix}-Screen-Bit`, 'true'],
    [`${prefix}-Privacy-Hide-Name`, 'false'], [`${prefix}-Privacy-Hide-Number`, 'false'],
  ];
}

function variables(ch: FsChannel): Headers {
  const own: Headers = [
    ['variable_direction', ch.originated ? 'outbound' : 'inbound'], ['variable_uuid', ch.uuid], ['variable_session_id', String(ch.seq)],
    ['variable_sip_from_user', ch.caller.number], ['variable_sip_from_display', ch.caller.name],
    ['variable_channel_name', ch.name], ['variable_sip_req_user', ch.dialed], ['variable_sip_to_user', ch.dialed],
    ['variable_call_uuid', ch.uuid],
  ];
  return [...own, ...STATIC_VARS.map(([n, v]) => [`variable_${n}`, v] as [string, string]),
    ...[...ch.vars].map(([n, v]) => [`variable_${n}`, v] as [string, string])];
}

/** The CHANNEL_DATA dump sent as the `connect` reply. */
export function channelData(ch: FsChannel): Headers {
  return eventHeaders(ch, 'CHANNEL_DATA', 'CS_EXECUTE');
}

export function appHeaders(app: RunningApp | { app: string; arg: string; uuid: string }, response?: string): Headers {
  const headers: Headers = [['Application', app.app], ['Application-Data', app.arg]];
  if (response !== undefined) headers.push(['Application-Response', response]);
  headers.push(['Application-UUID', app.uuid]);
  return headers;
}

export function otherLeg(ch: FsChannel, bot: BotLeg): Headers {
  return [
    ['Bridge-A-Unique-ID', ch.uuid], ['Bridge-B-Unique-ID', bot.uuid], ['Other-Type', 'originatee'],
    ['Other-Leg-Direction', 'outbound'], ['Other-Leg-Unique-ID', bot.uuid], ['Other-Leg-Channel-Name', 'sofia/lab/bot'],
    ['Other-Leg-Destination-Number', bot.invite.requestUri],
  ];
}
