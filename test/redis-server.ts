/** The cluster tests' Redis: one real redis-server per test file (src/sim/redis-server.ts). */
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { RedisServer } from '../src/sim/redis-server.js';

/** One Redis for the file's tests. */
export function redisForTests(password?: string): RedisServer & { client(): Redis } {
  const redis = Object.assign(new RedisServer(password), {
    /** A plain client for the test to look into Redis. */
    client(): Redis {
      const client = new Redis(redis.url, { password: redis.password, maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      return client;
    },
  });
  beforeAll(() => redis.start());
  afterAll(() => redis.stop());
  return redis;
}
/** Slots whose lease has not run out, on Redis's own clock. */
export async function liveSlots(client: Redis, cluster: string): Promise<number> {
  const [seconds, micros] = await client.time();
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return client.zcount(`twin:{${cluster}}:slots`, `(${now}`, '+inf');
}
