import { decodeJwt } from 'jose';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { TwinHttpError, type TwinHttp } from './http.js';

export class TwinAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TwinAuthError';
  }
}

/** After a failed login, the next one waits this long, doubling up to MAX_BACKOFF_MS (IAM may lock the account). */
const FIRST_BACKOFF_MS = 30_000;
const MAX_BACKOFF_MS = 5 * 60_000;

interface LoginFailure {
  error: TwinAuthError;
  /** No login before this (epoch ms); until then token() fails at once with `error`. */
  retryAt: number;
  backoffMs: number;
}

interface CachedToken {
  value: string;
  /** When we renew: a little before the JWT's exp. */
  renewAt: number;
  refreshToken?: string;
}

/**
 * Twin IAM token: logged in once, shared by every call, renewed before it expires and once more
 * when Twin answers 401. Concurrent calls that need a token wait on the same login. A failed login
 * is not repeated for 30 s (doubling to 5 min): neither calls nor readiness probes may hammer IAM.
 */
export class TwinAuth {
  private cached?: CachedToken;
  private inFlight?: Promise<string>;
  private failure?: LoginFailure;
  /** Logins and refreshes made (and how many of them failed), for metrics and tests. */
  logins = 0;
  loginFailures = 0;

  constructor(
    private readonly cfg: Config['twin'],
    private readonly http: TwinHttp,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async token(): Promise<string> {
    if (this.cfg.token !== undefined) return this.cfg.token;
    if (this.cached && this.clock.now() < this.cached.renewAt) return this.cached.value;
    return this.renew();
  }

  /** Called after a 401 for `rejected`: renews unless another call already did. */
  async tokenAfterRejection(rejected: string): Promise<string> {
    if (this.cfg.token !== undefined) throw new TwinAuthError('Twin refused the configured static token (401)');
    if (this.cached && this.cached.value !== rejected) return this.cached.value;
    this.cached = undefined;
    return this.renew();
  }

  /** The last login's failure while its back-off lasts; undefined when a login may be tried. */
  private get backingOff(): TwinAuthError | undefined {
    return this.failure && this.clock.now() < this.failure.retryAt ? this.failure.error : undefined;
  }

  private renew(): Promise<string> {
    const refusal = this.backingOff;
    if (refusal) return Promise.reject(refusal);
    this.inFlight ??= this.obtain().then(
      (token) => { this.failure = undefined; return token; },
      (err: unknown) => { throw this.backOff(err); },
    ).finally(() => { this.inFlight = undefined; });
    return this.inFlight;
  }

  private backOff(cause: unknown): TwinAuthError {
    const err = cause instanceof TwinAuthError ? cause : new TwinAuthError('Twin IAM login failed');
    const backoffMs = this.failure ? Math.min(this.failure.backoffMs * 2, MAX_BACKOFF_MS) : FIRST_BACKOFF_MS;
    this.failure = { error: err, retryAt: this.clock.now() + backoffMs, backoffMs };
    this.log.warn({ err: err.message, retryInS: backoffMs / 1000 }, 'Twin IAM login failed; not trying again before the back-off ends');
    return err;
  }

  private async obtain(): Promise<string> {
    const refreshToken = this.cached?.refreshToken;
    if (refreshToken !== undefined) {
      const refreshed = await this.request('/api/v1/auth/refresh', { refreshToken, ttl: this.cfg.token_ttl_s })
        .catch((err: Error) => {
          this.log.warn({ err: err.message }, 'Twin token refresh failed; logging in again');
          return undefined;
        });
      if (refreshed) return refreshed;
    }
    const body: Record<string, unknown> = { email: this.cfg.email, password: this.cfg.password, ttl: this.cfg.token_ttl_s };
    if (this.cfg.company_id !== undefined) body.companyId = this.cfg.company_id;
    return this.request('/api/v1/auth/login', body);
  }

  private async request(path: string, body: unknown): Promise<string> {
    this.logins += 1;
    try {
      return await this.exchange(path, body);
    } catch (err) {
      this.loginFailures += 1;
      throw err;
    }
  }

  private async exchange(path: string, body: unknown): Promise<string> {
    let res;
    try {
      res = await this.http.postJson(new URL(path, this.cfg.iam_url).href, body, { timeoutMs: this.cfg.login_timeout_ms });
    } catch (err) {
      const detail = err instanceof TwinHttpError ? err.message : 'network error';
      throw new TwinAuthError(`Twin IAM login failed: ${detail}`);
    }
    if (res.status !== 200) throw new TwinAuthError(`Twin IAM login failed: HTTP ${res.status}${res.status === 401 ? ' (wrong email or password?)' : ''}`);
    const answer = parseJsonObject(res.text);
    const token = answer?.token;
    if (typeof token !== 'string' || token.length === 0) throw new TwinAuthError('Twin IAM answered 200 without a token');
    const refresh = answer?.refreshToken;
    this.cached = { value: token, renewAt: this.renewTime(token), refreshToken: typeof refresh === 'string' ? refresh : undefined };
    this.log.info({ renewAt: new Date(this.cached.renewAt).toISOString() }, 'logged in to Twin IAM');
    return token;
  }

  /** Renew at 90% of the token's life, at most a minute before exp. */
  private renewTime(token: string): number {
    const now = this.clock.now();
    let expiresAt = now + this.cfg.token_ttl_s * 1000;
    try {
      const exp = decodeJwt(token).exp;
      if (typeof exp === 'number') expiresAt = exp * 1000;
    } catch {
      // Not a JWT we can read: trust the ttl we asked for.
    }
    const life = Math.max(0, expiresAt - now);
    return now + life - Math.min(60_000, life * 0.1);
  }
}

export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
