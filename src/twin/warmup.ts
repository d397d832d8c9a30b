import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { parseJsonObject, TwinAuthError, type TwinAuth } from './auth.js';
import { TwinHttpError, type TwinHttp } from './http.js';

/** One call as Twin's warm-up request names it. */
export interface WarmupCall {
  callId: string;
  clientExternalId: string;
  callerId: string;
  number: string;
  botSettingsId: string;
  variables: Record<string, string>;
  callback: { url: string; data: Record<string, unknown> }[];
}

export type WarmupResult =
  | { kind: 'accepted'; twinId: string }
  /** Twin answered null: this call must not reach the bot. */
  | { kind: 'rejected' }
  /** Twin is not ready (non-200, timeout, garbage): throttle the trunk. */
  | { kind: 'unavailable'; reason: string }
  /**
   * Our own side could not do it in time (no free connection, or this process stalled at the
   * deadline): not Twin's fault, so the trunk is not throttled; the caller goes to the fallback.
   */
  | { kind: 'overloaded'; reason: string }
  /** Our caller gave up (hung up) before Twin answered. */
  | { kind: 'aborted' };

/** Twin's ids go into a SIP header and a URI: accept only plain token characters. */
const SAFE_TWIN_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export class TwinApi {
  /** Warm-up HTTP requests made, for metrics and benchmarks. */
  requests = 0;

  constructor(
    private readonly cfg: Config['twin'],
    private readonly http: TwinHttp,
    readonly auth: TwinAuth,
    private readonly log: Logger,
  ) {}

  /** Sync warm-up of one answered call. */
  async warmUp(call: WarmupCall, signal?: AbortSignal): Promise<WarmupResult> {
    const results = await this.warmUpBatch([call], { async: false, signal });
    return results.get(call.callId) ?? { kind: 'unavailable', reason: 'no answer for the call' };
  }

  /** Warms up many calls in one request; every callId gets a result. */
  async warmUpBatch(calls: WarmupCall[], opts: { async: boolean; signal?: AbortSignal }): Promise<Map<string, WarmupResult>> {
    const body = { returnAnswerAsync: opts.async, calls };
    const outcome = await this.send(body, opts.signal);
    const results = new Map<string, WarmupResult>();
    for (const call of calls) {
      results.set(call.callId, 'answer' in outcome ? readOne(outcome.answer, call.callId) : outcome.failure);
    }
    return results;
  }

  private async send(body: unknown, signal?: AbortSignal): Promise<{ answer: Record<string, unknown> } | { failure: WarmupResult }> {
    const url = new URL('/api/v1/calls', this.cfg.cis_url).href;
    try {
      let token = await this.auth.token();
      let res = await this.post(url, body, token, signal);
      if (res.status === 401) {
        token = await this.auth.tokenAfterRejection(token);
        res = await this.post(url, body, token, signal);
      }
      if (res.status !== 200) return { failure: unavailable(`Twin answered HTTP ${res.status}`) };
      const answer = parseJsonObject(res.text);
      if (!answer) return { failure: unavailable('Twin answered 200 with a body that is not a JSON object') };
      return { answer };
    } catch (err) {
      if (err instanceof TwinHttpError && err.code === 'ABORTED') return { failure: { kind: 'aborted' } };
      if (err instanceof TwinHttpError && (err.code === 'BUSY' || err.code === 'STALLED')) return { failure: { kind: 'overloaded', reason: err.message } };
      if (err instanceof TwinHttpError || err instanceof TwinAuthError) return { failure: unavailable(err.message) };
      this.log.error({ err }, 'unexpected warm-up failure');
      return { failure: unavailable('unexpected error') };
    }
  }

  private post(url: string, body: unknown, token: string, signal?: AbortSignal) {
    this.requests += 1;
    return this.http.postJson(url, body, {
      headers: { authorization: `Bearer ${token}` },
      timeoutMs: this.cfg.warmup_timeout_ms,
      signal,
    });
  }
}

function unavailable(reason: string): WarmupResult {
  return { kind: 'unavailable', reason };
}

function readOne(answer: Record<string, unknown>, callId: string): WarmupResult {
  if (!(callId in answer)) return unavailable('Twin answered without this call');
  const value = answer[callId];
  if (value === null) return { kind: 'rejected' };
  if (typeof value === 'string' && SAFE_TWIN_ID.test(value)) return { kind: 'accepted', twinId: value };
  return unavailable('Twin answered an id that is not a plain token');
}
