import { isIP } from 'node:net';
import { z } from 'zod';

/** Names a SIP header may have when we add it to the bot leg: letters, digits and dashes only. */
const headerName = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, 'must be a SIP header name (letters, digits, dashes)');
const url = z.url({ message: 'must be a URL such as https://host' });
const positiveInt = z.number().int().positive();
/** A context or extension name: nothing a PBX command line could split on or expand (no spaces, $, quotes). */
export const DIALPLAN_NAME = /^[A-Za-z0-9_+*#.-]{1,80}$/;
const dialplanWord = z.string().regex(DIALPLAN_NAME, 'must be a dialplan name (letters, digits, _ + * # . -)');

/** An IPv4/IPv6 address, or one with a /prefix (CIDR). */
function isAddressOrCidr(value: string): boolean {
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}
const addressOrCidr = z.string().refine(isAddressOrCidr, 'must be an IP address or a CIDR such as 10.0.0.0/24');

export const FallbackSchema = z.discriminatedUnion('action', [
  z.object({
    action: z.literal('hangup'),
    /** Q.850 cause sent to the caller, e.g. 16 normal clearing, 17 busy, 21 rejected, 34 congestion. */
    cause: z.number().int().min(1).max(127).default(16),
  }),
  z.object({
    action: z.literal('continue'),
    context: dialplanWord,
    extension: dialplanWord.default('s'),
    priority: positiveInt.default(1),
  }),
], { message: "action must be 'hangup' or 'continue'" });
export type Fallback = z.infer<typeof FallbackSchema>;

/** Where a bot may send a caller (SIP REFER): a dialplan place, written `context,extension` or as an object. */
export const TransferDestinationSchema = z.union([
  z.string().regex(/^[A-Za-z0-9_+*#.-]{1,80},[A-Za-z0-9_+*#.-]{1,80}$/, 'must be context,extension (dialplan names)')
    .transform((s) => { const [context, extension] = s.split(','); return { context: context!, extension: extension! }; }),
  z.object({ context: dialplanWord, extension: dialplanWord }).strict(),
], { message: 'must be context,extension or { context, extension }' });
export type TransferDestination = z.infer<typeof TransferDestinationSchema>;

/** An E.164 number as Twilio dials it: + and 2 to 15 digits. */
const E164 = /^\+[1-9][0-9]{1,14}$/;
/** A SIP URI Twilio may dial: no spaces, quotes, angle brackets or & (our own X- parameters follow a ?). */
const TWILIO_SIP_URI = /^sips?:[^\s<>"&?]{1,200}$/;

/**
 * A route's fallback in Twilio's terms (a Twilio call has no dialplan to continue in): hang up,
 * refuse without answering (<Reject>), or go on to people: <Dial> a number or SIP URI, or
 * <Redirect> to the customer's own TwiML URL.
 */
export const TwilioActionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('hangup') }).strict(),
  z.object({ action: z.literal('reject'), reason: z.enum(['rejected', 'busy']).default('rejected') }).strict(),
  z.object({
    action: z.literal('dial'),
    number: z.string().regex(E164, 'must be an E.164 number such as +442071234567').optional(),
    sip: z.string().regex(TWILIO_SIP_URI, 'must be a SIP URI such as sip:desk@pbx.example.com (no spaces, quotes, < > & ?)').optional(),
    /** How long the person's phone may ring, s (Twilio's <Dial timeout>, 5 to 600). */
    timeout_s: z.number().int().min(5).max(600).default(30),
  }).strict().refine((d) => (d.number === undefined) !== (d.sip === undefined), 'give exactly one of number or sip'),
  z.object({ action: z.literal('redirect'), url }).strict(),
], { message: "action must be 'hangup', 'reject', 'dial' or 'redirect'" });
export type TwilioAction = z.infer<typeof TwilioActionSchema>;

/** Where a bot's REFER may send a Twilio caller: an E.164 number or a SIP URI. */
export const TwilioDestinationSchema = z.string().refine((d) => E164.test(d) || TWILIO_SIP_URI.test(d),
  'must be an E.164 number (+442071234567) or a SIP URI (sip:desk@pbx.example.com)');

/** The route's actions for calls that come in over Twilio; absent: <Hangup/>. */
const TwilioRouteSchema = z.object({
  fallback: TwilioActionSchema.optional(),
  after_bot_hangup: TwilioActionSchema.optional(),
  transfers: z.record(z.string().regex(DIALPLAN_NAME, 'must be a Refer-To name (letters, digits, _ + * # . -)'), TwilioDestinationSchema)
    .refine((t) => Object.keys(t).length <= 32, 'at most 32 transfer targets per route').optional(),
}).strict();

const RouteFields = {
  bot: z.string().min(1).max(128).optional(),
  record: z.boolean().optional(),
  variables: z.record(z.string(), z.string()).optional(),
  fallback: FallbackSchema.optional(),
  after_bot_hangup: FallbackSchema.optional(),
  /**
   * Refer-To user (what the bot names in its REFER) → where the caller goes. Anything not listed is
   * refused: a bot must never send a caller to a number of its choosing (toll fraud).
   */
  transfers: z.record(dialplanWord, TransferDestinationSchema)
    .refine((t) => Object.keys(t).length <= 32, 'at most 32 transfer targets per route').optional(),
  /** How long a transfer's destination may ring before the transfer counts as failed. */
  transfer_timeout_s: positiveInt.max(300).optional(),
  /** The same route's actions in Twilio's terms, for calls to Twilio numbers (src/pbx/twilio/). */
  twilio: TwilioRouteSchema.optional(),
};

export const RouteSchema = z.object({
  /** Dialled number (DID) this entry applies to; omitted = any. */
  dialed: z.string().min(1).optional(),
  /** Caller number prefix this entry applies to; omitted = any. */
  caller_prefix: z.string().min(1).optional(),
  ...RouteFields,
}).strict();

export const TwilioSchema = z.object({
  account_sid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be an Account SID: AC and 32 hex digits'),
  /** The account's auth token (signs every webhook); write it as ${ENV} or auth_token_file. */
  auth_token: z.string().min(1),
  /** How Twilio reaches this port (behind a reverse proxy: the proxy's https URL with the same path). */
  public_url: url.refine((u) => !u.includes('?') && !u.includes('#'), 'must not have a query or fragment').optional(),
  listen_host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port (tests). */
  listen_port: z.number().int().min(0).max(65535).default(8085),
  /**
   * Twilio waits 15 s for the webhook's TwiML, then gives up on the call: the warm-up of a Twilio
   * call is bounded below that (twin.warmup_timeout_ms still applies when smaller).
   */
  warmup_timeout_ms: positiveInt.max(14_000).default(12_000),
  bot_answer_timeout_s: z.number().int().min(5).max(600).default(30),
  /** Twilio's REST API (outbound calls); a stand-in's URL in tests. */
  api_url: url.default('https://api.twilio.com'),
  /**
   * How often an outbound call's state is read from the Calls API (GET Calls/{Sid}.json) while it
   * rings and while it talks to the bot: the CLI has no public URL for status callbacks.
   */
  poll_interval_ms: z.number().int().min(20).max(10_000).default(1000),
  /**
   * How the daemon follows its outbound Twilio calls: `callbacks` (Twilio's status callbacks and
   * the <Dial> action at public_url; the Calls API is read only every 30 poll_interval_ms, at least
   * 1 s, in case one is lost),
   * `poll` (the Calls API every poll_interval_ms), `auto`: callbacks when the daemon has a
   * public_url. The CLI (`call`, `campaign`) has no public URL and always polls.
   */
  outbound_status: z.enum(['auto', 'callbacks', 'poll']).default('auto'),
}).strict();

export const ConfigSchema = z.object({
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Show only the last 3 digits of phone numbers in log lines. */
    mask_numbers: z.boolean().default(false),
  }).strict().default({ level: 'info', mask_numbers: false }),

  shutdown: z.object({
    /** On SIGTERM, live calls may go on this long; then the ones left are hung up and the process exits. */
    timeout_s: positiveInt.default(300),
  }).strict().default({ timeout_s: 300 }),

  twin: z.object({
    iam_url: url,
    cis_url: url,
    email: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** A fixed token instead of logging in with email and password. */
    token: z.string().min(1).optional(),
    company_id: z.string().min(1).optional(),
    token_ttl_s: positiveInt.default(3600),
    login_timeout_ms: positiveInt.default(5000),
    warmup_timeout_ms: positiveInt.default(15000),
    /**
     * Warm-ups in flight at once, one keep-alive connection each, opened as the load needs them. A
     * sync warm-up lasts as long as the bot takes to get ready: 100 calls/s × 2 s needs 200.
     */
    max_connections: positiveInt.max(10_000).default(512),
    /** A warm-up that finds every connection busy waits this long, then the caller goes to the fallback (BUSY). */
    connection_wait_ms: positiveInt.max(60_000).default(2000),
    callback_urls: z.array(url).default([]),
    sip: z.object({
      /** Where the bot leg goes; placeholders: {twin_id} {call_id} {bot}. */
      uri: z.string().regex(/^sips?:[^\s<>"]+$/, 'must be a SIP URI such as sip:bot@twin.example'),
      /** Headers added to the INVITE; values are templates over {twin_id} {call_id} {external_id} {bot} {caller} {dialed}. */
      headers: z.record(headerName, z.string().max(256))
        .refine((h) => Object.keys(h).length <= 7, 'at most 7 headers (the Asterisk bot dialplan sets 11 values per leg)')
        .default({ 'X-TWIN-CallId': '{twin_id}' }),
      record_header: headerName.default('X-TWIN-EnableRecord'),
      /** The bot leg's caller number when the caller's is empty or not a phone number. */
      anonymous_caller: z.string().regex(/^(\+?[0-9]{1,20}|anonymous)$/, 'must be a phone number (+ and digits) or "anonymous"').default('anonymous'),
    }).strict(),
  }).strict()
    .refine((t) => t.token !== undefined || (t.email !== undefined && t.password !== undefined), {
      message: 'give either token, or both email and password',
    }),

  asterisk: z.object({
    url: url,
    username: z.string().min(1),
    password: z.string().min(1),
    app: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a Stasis application name (letters, digits, _ -)').default('twin'),
    /**
     * Who opens the bot leg: `dialplan` continues the caller into `dial_context` whose Dial() calls
     * the bot (Asterisk does the media path, ~4 Stasis messages per call); `bridge` creates the leg
     * over ARI and bridges it in a Stasis bridge (~80 messages per call through the app's queue);
     * `auto`: dialplan when Asterisk has `dial_context` (twin-bot.conf included), else bridge.
     */
    bot_leg: z.enum(['auto', 'dialplan', 'bridge']).default('auto'),
    /** bot_leg dialplan: the context of the shipped [twin-bot] snippet. */
    dial_context: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a dialplan context name').default('twin-bot'),
    /** Channel endpoint of the bot leg; {uri} is replaced by the SIP URI. */
    bot_endpoint: z.string().regex(/^[^,^()\s]+$/, 'must be a dial string such as PJSIP/twin/{uri}, without , ^ ( ) or spaces').default('PJSIP/twin/{uri}'),
    /** Channel endpoint that reaches a subscriber for outbound calls; {number} is the E.164 number. */
    outbound_endpoint: z.string().regex(/^[A-Za-z]+\/\S*\{number\}\S*$/, 'must be an endpoint with {number}, e.g. PJSIP/{number}@carrier')
      .default('PJSIP/{number}@carrier'),
    /** Custom device state that shows the trunk's state to the dialplan: Custom:<name>. */
    device_state: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('twin-trunk'),
    hold: z.enum(['ring', 'moh', 'none']).default('ring'),
    moh_class: z.string().min(1).default('default'),
    bot_answer_timeout_s: positiveInt.max(300).default(30),
    /**
     * A caller that took Asterisk longer than this from its channel's creation to our app
     * (StasisStart) shows Asterisk short of CPU: for 5 s the trunk's device state is INUSE, and
     * the shipped [from-customers-answered] lets callers wait without `Playtones(ring)` ([from-customers]
     * lets the caller's phone ring: nothing to skip). 0: never.
     */
    quiet_ringback_above_ms: z.number().int().min(0).max(60_000).default(150),
    /**
     * Who acts on the bot's REFER: `ari` (Asterisk 20.13+, 21.8+, 22.3+: PJSIP_TRANSFER_HANDLING
     * ari-only; the product checks the target, dials it and reports to the bot), `core` (Asterisk
     * transfers by itself within transfer_context), `auto` (ari when the version has it).
     */
    transfer_handling: z.enum(['auto', 'ari', 'core']).default('auto'),
    /** transfer_handling core and bot_leg dialplan: the context Asterisk looks the Refer-To user up in. */
    transfer_context: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a dialplan context name').default('twin-transfers'),
    /** Upper bound of HTTP connections to ARI (Asterisk allows 100 sessions by default). */
    max_http_connections: positiveInt.max(90).default(32),
    request_timeout_ms: positiveInt.default(5000),
  }).strict().optional(),

  freeswitch: z.object({
    /** Where the product listens for the dialplan's `socket <host>:<port> async full`. */
    listen_host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port (tests). */
    listen_port: z.number().int().min(0).max(65535).default(8084),
    /** FreeSWITCH's own event socket (event_socket.conf.xml), for the trunk state variable. */
    esl_host: z.string().min(1).default('127.0.0.1'),
    esl_port: z.number().int().min(1).max(65535).default(8021),
    esl_password: z.string().min(1),
    /** Dial string of the bot leg; {uri} sip:user@host, {address} user@host, {user} the URI's user part. */
    bot_endpoint: z.string().regex(/^\S+$/, 'must be a dial string without spaces, e.g. sofia/gateway/twin/{user}')
      .default('sofia/gateway/twin/{user}'),
    /** Global variable that shows the trunk's state to the dialplan: NOT_INUSE, BUSY, PROBING or UNAVAILABLE. */
    trunk_variable: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'must be a variable name (letters, digits, _)').default('twin_trunk'),
    hold: z.enum(['ring', 'moh', 'none']).default('ring'),
    /**
     * The hold starts only when the warm-up takes longer than this: a quick one goes straight to
     * the bridge (whose instant_ringback the caller hears), saving FreeSWITCH's media ticks for
     * starting and breaking a playback (~40 ms measured).
     */
    hold_delay_ms: z.number().int().min(0).max(5000).default(50),
    /** Ringback tone played during the warm-up (tone_stream syntax). */
    ringback: z.string().regex(/^%\([0-9,]+\)$/, 'must be a tone such as %(2000,4000,440,480)').default('%(2000,4000,440,480)'),
    moh_source: z.string().regex(/^[^\s]+$/, 'must be a sound source such as local_stream://moh').default('local_stream://moh'),
    bot_answer_timeout_s: positiveInt.max(300).default(30),
    command_timeout_ms: positiveInt.default(5000),
    /** A peer of the call socket that does not answer `connect` within this is closed. */
    connect_timeout_ms: positiveInt.default(5000),
    /**
     * Who may connect to the call socket (IPs, CIDRs); anyone else is closed before a byte is sent.
     * Default: the address(es) of esl_host, resolved at start (both loopbacks for a local FreeSWITCH).
     */
    allowed_peers: z.array(addressOrCidr).min(1, 'name at least one address').optional(),
    /**
     * Where FreeSWITCH connects for calls the product originates (`&socket(<host>:<listen_port>)`);
     * default listen_host, or 127.0.0.1 when listen_host is 0.0.0.0 / ::. Set it when FreeSWITCH
     * runs on another host.
     */
    originate_socket_host: z.string().regex(/^[A-Za-z0-9.:_-]{1,253}$/, 'must be a host name or IP address').optional(),
    /** Dial string that reaches a subscriber for outbound calls; {number} is the E.164 number. */
    outbound_dial: z.string().regex(/^\S*\{number\}\S*$/, 'must be a dial string with {number} and no spaces, e.g. sofia/gateway/carrier/{number}')
      .default('sofia/gateway/carrier/{number}'),
  }).strict().optional(),

  /**
   * Twilio numbers (src/pbx/twilio/): the number's "A call comes in" webhook points at
   * {public_url}/voice (POST), its status callback at {public_url}/status. The product listens on
   * its own port for it, apart from the admin port (metrics, dialer API), so only this one faces Twilio.
   * Without public_url the product takes no calls from Twilio and only places them (outbound).
   */
  twilio: TwilioSchema.optional(),

  trunk: z.object({
    cooldown_s: positiveInt.default(180),
    max_concurrent_calls: positiveInt.default(100),
    max_calls_per_second: positiveInt.default(20),
    /**
     * A caller who reaches the product longer than this after the PBX handed it over (Stasis() /
     * socket) goes to the fallback at once with BUSY: the box is over capacity, and serving the
     * late callers would make every caller late. 0: never.
     */
    max_handover_delay_ms: z.number().int().min(0).max(60_000).default(1000),
  }).strict().default({ cooldown_s: 180, max_concurrent_calls: 100, max_calls_per_second: 20, max_handover_delay_ms: 1000 }),

  /**
   * Several PBX nodes sharing one Twin budget through Redis (src/cluster/). Without this section
   * the trunk gate is this node's own, as before.
   */
  cluster: z.object({
    /** redis://host:6379/0 or rediss://host:6380 (TLS); the password goes in `password`, not here. */
    redis_url: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be a URL such as redis://10.0.0.5:6379 or rediss://…')
      .refine((u) => !/^rediss?:\/\/[^/@]*:[^/@]*@/.test(u), 'put the password in cluster.password (or password_file), not in the URL')
      // ioredis takes options from the query string too (?password=…): none, so no secret hides there.
      .refine((u) => !u.includes('?'), 'must not have a query string: use the cluster section\'s own fields'),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    tls: z.object({
      /** PEM of the CA that signed Redis's certificate; written as ca_file: /path. */
      ca: z.string().min(1).optional(),
      /** Name checked against the certificate, when it differs from the URL's host. */
      servername: z.string().min(1).optional(),
    }).strict().optional(),
    /** Key prefix: the nodes of one company share it; another company on the same Redis uses another. */
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be letters, digits, _ . - (it prefixes the Redis keys)'),
    /** This node's name, shown as the one that saw a failure; unique in the cluster. */
    node: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be letters, digits, _ . -'),
    /** This node's part of trunk.max_* while Redis cannot be reached. */
    local_share: z.object({
      max_concurrent_calls: positiveInt,
      max_calls_per_second: positiveInt,
    }).strict(),
    /** A call's slot is a lease renewed while the call lives: a killed node's slots free within this. */
    lease_ttl_ms: z.number().int().min(300).max(300_000).default(15_000),
    /** Bound of each Redis command on the call path; past it the call goes on with the local share. */
    command_timeout_ms: z.number().int().min(5).max(1000).default(50),
  }).strict().optional(),

  session: z.object({
    /** A Twin session older than this is never sent; Twin's own limit is 180 s. */
    max_age_s: positiveInt.max(180).default(170),
  }).strict().default({ max_age_s: 170 }),

  outbound: z.object({
    /** ISO country for numbers written without +, e.g. GB; without it only +E.164 is accepted. */
    default_country: z.string().regex(/^[A-Z]{2}$/, 'must be a two-letter country code such as GB').optional(),
    /** Caller ID of outbound calls when none is given. */
    caller_id: z.string().min(1).optional(),
    ring_timeout_s: positiveInt.max(120).default(30),
    /** A subscriber who answers after the session's max age: warm up again, or hang up with STALE. */
    on_stale_session: z.enum(['rewarm', 'drop']).default('rewarm'),
    /** Campaigns: calls per warm-up request, calls at once, new calls per second. */
    batch_size: positiveInt.max(100).default(10),
    concurrency: positiveInt.default(10),
    calls_per_second: positiveInt.default(5),
  }).strict().default({ ring_timeout_s: 30, on_stale_session: 'rewarm', batch_size: 10, concurrency: 10, calls_per_second: 5 }),

  http: z.object({
    listen_host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port (tests). */
    listen_port: z.number().int().min(0).max(65535).default(8080),
    /** Bearer token of the dialer API (POST/GET /v1/calls); the API is off without it. */
    api_token: z.string().min(16, 'must be at least 16 characters').optional(),
    /**
     * A connection that sends nothing for this long is closed: before its first request, and
     * between requests (keep-alive; node adds a second so the client hears of it first).
     */
    idle_timeout_ms: z.number().int().min(100).max(600_000).default(10_000),
    /** Open connections at most; one more is answered 503 and closed. Keep it below the fd limit. */
    max_connections: z.number().int().min(1).max(60_000).default(1000),
  }).strict().optional(),

  callbacks: z.object({
    /** How Twin reaches this product's HTTP port, e.g. https://connector.example.com:8080. */
    public_url: url,
    /** Put in the callback URL's path so only Twin (who got it in the warm-up) can post. */
    secret: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/, 'must be 16 to 128 letters, digits, _ or -'),
    /** Where callbacks are kept until forwarded (and for de-duplication afterwards). */
    dir: z.string().min(1).default('/var/lib/twin-connector/callbacks'),
    /** The customer's URL(s) that get every callback. */
    forward_to: z.array(url).min(1, 'name at least one URL to forward callbacks to'),
    forward_timeout_ms: positiveInt.default(5000),
    /** Give up forwarding a callback after this long (it stays in failed/). */
    retry_for_h: positiveInt.max(720).default(24),
  }).strict().optional(),

  /**
   * Where the product keeps what must outlive it: the calls sent to Twin and not yet counted
   * (calls.jsonl), so a call still going on (or ended) across a restart gets its one outcome line.
   */
  state: z.object({
    dir: z.string().min(1).default('/var/lib/twin-connector/state'),
  }).strict().default({ dir: '/var/lib/twin-connector/state' }),

  routes: z.object({
    default: z.object({ ...RouteFields, bot: z.string().min(1).max(128) }).strict(),
    table: z.array(RouteSchema).default([]),
  }).strict(),
}).strict()
  .refine((c) => c.asterisk !== undefined || c.freeswitch !== undefined || c.twilio !== undefined, {
    message: 'configure asterisk, freeswitch or twilio: the product needs a PBX (or Twilio numbers) to take calls from',
  })
  .refine((c) => c.twilio === undefined || twilioPassesHeaders(c.twin.sip), {
    message: 'with twilio configured, every twin.sip header (and record_header) must start with X- (not X-Twilio): Twilio passes only those from a <Sip> URI',
    path: ['twin', 'sip', 'headers'],
  })
  .refine((c) => c.callbacks === undefined || c.http !== undefined, {
    message: 'callbacks need the http section: Twin posts them to the product\'s HTTP port', path: ['callbacks'],
  });

export type Config = z.infer<typeof ConfigSchema>;
export type RouteEntry = z.infer<typeof RouteSchema>;
export type AsteriskConfig = NonNullable<Config['asterisk']>;
export type FreeswitchConfig = NonNullable<Config['freeswitch']>;
export type OutboundConfig = Config['outbound'];

export type TwilioConfig = NonNullable<Config['twilio']>;
/** A `twilio:` section that takes calls: Twilio knows where to send the webhooks. */
export type InboundTwilioConfig = TwilioConfig & { public_url: string };

/** Twilio drops a <Sip> URI parameter that is not an X- header, or one starting X-Twilio: warnings 13252/32113. */
export function twilioPassesHeaders(sip: { headers: Record<string, string>; record_header: string }): boolean {
  return [...Object.keys(sip.headers), sip.record_header].every((name) => /^X-(?!Twilio)/i.test(name));
}

/**
 * What the call flow needs from the configured PBX of a call. Twilio plays its own ringing while
 * the webhook waits, so there is nothing to hold with.
 */
export function pbxSettings(config: Config, pbx: 'asterisk' | 'freeswitch' | 'twilio'): { hold: 'ring' | 'moh' | 'none'; bot_answer_timeout_s: number } {
  if (pbx === 'twilio') return { hold: 'none', bot_answer_timeout_s: config.twilio?.bot_answer_timeout_s ?? 30 };
  return (pbx === 'asterisk' ? config.asterisk : config.freeswitch) ?? { hold: 'ring', bot_answer_timeout_s: 30 };
}
