import { Pool } from 'undici';

export interface JsonResponse {
  status: number;
  /** Raw body text; callers parse it defensively. */
  text: string;
}

export interface PostOptions {
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Thrown for a network failure or timeout; `code` is stable for logs and metrics. */
export class TwinHttpError extends Error {
  constructor(readonly code: 'TIMEOUT' | 'ABORTED' | 'NETWORK', message: string) {
    super(message);
    this.name = 'TwinHttpError';
  }
}

/** One keep-alive pool per Twin origin (IAM and CIS may live on different hosts). */
export class TwinHttp {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly maxConnections: number) {}

  async postJson(url: string, body: unknown, options: PostOptions): Promise<JsonResponse> {
    const target = new URL(url);
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      const res = await this.pool(target.origin).request({
        method: 'POST',
        path: target.pathname + target.search,
        headers: { 'content-type': 'application/json', accept: 'application/json', ...options.headers },
        body: JSON.stringify(body),
        signal,
      });
      const text = await res.body.text();
      return { status: res.statusCode, text };
    } catch (err) {
      if (options.signal?.aborted) throw new TwinHttpError('ABORTED', 'request aborted');
      if (timeout.aborted) throw new TwinHttpError('TIMEOUT', `no answer within ${options.timeoutMs} ms`);
      throw new TwinHttpError('NETWORK', `${target.origin}: ${(err as { code?: string }).code ?? (err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: this.maxConnections, keepAliveTimeout: 30_000, pipelining: 1 });
      this.pools.set(origin, pool);
    }
    return pool;
  }
}
