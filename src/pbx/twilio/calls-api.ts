/**
 * The part of Twilio's REST API that places and follows outbound calls ("Call resource":
 * create, fetch, update, list by ParentCallSid), over fetch with HTTP basic auth.
 *
 * Not the `twilio` package's REST client: it builds its host names from edge and region
 * (api.<edge>.<region>.twilio.com) and has no base-URL option, so pointing it at the stand-in would
 * take a custom httpClient rewriting every URL — a test of that rewrite, not of the client. With
 * `twilio.api_url` the same code runs against Twilio and the stand-in.
 *
 * The auth token goes in the Authorization header only: never into a URL, a log line or an error.
 */

/** A call's status as the Call resource gives it (Twilio's "Call resource: Call Status values"). */
export type TwilioCallStatus = 'queued' | 'ringing' | 'in-progress' | 'completed' | 'busy' | 'failed' | 'no-answer' | 'canceled';

/** The fields of a Call resource the product reads. */
export interface CallResource {
  sid: string;
  status: TwilioCallStatus;
  parent_call_sid: string | null;
  end_time: string | null;
}

export interface CallsApiOptions {
  apiUrl: string;
  accountSid: string;
  authToken: string;
  /** Bound on each request, ms. */
  timeoutMs?: number;
}

/** What Twilio answered instead of the resource: HTTP status and, when it sent one, its error code and message. */
export class TwilioApiError extends Error {
  constructor(readonly status: number, readonly code: number | undefined, message: string) {
    super(message);
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;

export class CallsApi {
  private readonly base: string;
  private readonly authorization: string;
  private readonly timeoutMs: number;

  constructor(options: CallsApiOptions) {
    this.base = `${options.apiUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}`;
    this.authorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString('base64')}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** POST Calls.json: Twilio answers 201 with the new call (status queued). */
  create(params: Record<string, string | string[]>): Promise<CallResource> {
    return this.request('POST', '/Calls.json', params);
  }

  fetch(sid: string): Promise<CallResource> {
    return this.request('GET', `/Calls/${encodeURIComponent(sid)}.json`);
  }

  /** Status=canceled stops a queued or ringing call; Status=completed hangs up one in progress. */
  update(sid: string, status: 'canceled' | 'completed'): Promise<CallResource> {
    return this.request('POST', `/Calls/${encodeURIComponent(sid)}.json`, { Status: status });
  }

  /** The calls a call's TwiML placed (its <Dial> legs), by the ParentCallSid filter of the list. */
  async children(parentSid: string): Promise<CallResource[]> {
    const page = await this.request<{ calls?: CallResource[] }>('GET', `/Calls.json?ParentCallSid=${encodeURIComponent(parentSid)}`);
    return page.calls ?? [];
  }

  private async request<T = CallResource>(method: 'GET' | 'POST', path: string, form?: Record<string, string | string[]>): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: this.authorization, accept: 'application/json', ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(form ? { body: formBody(form) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      // fetch's own errors name the host at most; the URL's path carries the Account SID only.
      throw new TwilioApiError(0, undefined, `Twilio's API could not be reached: ${(err as Error).message}`);
    }
    const text = await res.text();
    const body = parseJson(text);
    if (res.ok && body !== undefined) return body as T;
    throw apiError(res.status, body);
  }
}

/** A list goes as the same name repeated (StatusCallbackEvent=ringing&StatusCallbackEvent=answered), as Twilio's libraries send it. */
function formBody(form: Record<string, string | string[]>): string {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(form)) for (const one of [value].flat()) body.append(name, one);
  return body.toString();
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Twilio's error body is { code, message, more_info, status }: its words, cut short, never ours. */
function apiError(status: number, body: unknown): TwilioApiError {
  const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown };
  const said = typeof message === 'string' ? `: ${message.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 200)}` : '';
  const numbered = typeof code === 'number' ? ` (Twilio error ${code})` : '';
  const hint = status === 401 ? ' — check twilio.account_sid and auth_token' : '';
  return new TwilioApiError(status, typeof code === 'number' ? code : undefined, `Twilio's API answered HTTP ${status}${numbered}${said}${hint}`);
}
