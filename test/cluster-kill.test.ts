/**
 * A node killed with -9 while its calls are live: nobody gives its slots back, so their leases run
 * out (on Redis's time, kept short here) and another node can use them. Redis asks for a password,
 * given to the daemon by password_file; it never shows in the daemon's log.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Lab } from '../src/sim/lab.js';
import { runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig } from './daemon-process.js';
import { waitFor } from './helpers.js';
import { liveSlots, redisForTests } from './redis-server.js';

const PASSWORD = 'redis-Pw-8f3k2q';
const redis = redisForTests(PASSWORD);
const { twin, ari } = simulatorsForProcessTests();

describe('a node killed with live calls', () => {
  it('frees its slots within the lease TTL', async () => {
    const cluster = { redis_url: redis.url, name: 'killtest', lease_ttl_ms: 900, local_share: { max_concurrent_calls: 1, max_calls_per_second: 5 } };
    const trunk = { cooldown_s: 10, max_concurrent_calls: 2, max_calls_per_second: 100 };
    const { path } = writeDaemonConfig({ twin, ari }, (config, dir) => {
      writeFileSync(join(dir, 'redis-password'), `${PASSWORD}\n`);
      config.trunk = trunk;
      config.cluster = { ...cluster, node: 'doomed', password_file: join(dir, 'redis-password') };
    });
    const doomed = runDaemonProcess(path);
    const survivor = await Lab.start({ config: { trunk, cluster: { ...cluster, node: 'survivor', password: PASSWORD } } });
    const client = redis.client();
    try {
      await waitFor(() => doomed.output().includes('sharing the trunk with the cluster') && doomed.output().includes('connected to Asterisk ARI'), 'the daemon to join', 15_000);
      const calls = [ari.placeCall(), ari.placeCall()];
      for (const call of calls) await waitFor(() => ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the calls to be bridged', 10_000);
      expect(await liveSlots(client, 'killtest')).toBe(2);
      const refused = survivor.pbx().placeCall(); // the cluster is full
      await refused.left;
      expect((await survivor.outcomeOf(refused.id)).status).toBe('BUSY');

      doomed.child.kill('SIGKILL');
      await doomed.exited;
      await waitFor(async () => (await liveSlots(client, 'killtest')) === 0, 'the killed node\'s leases to run out', 5000);
      const taken = survivor.pbx().placeCall();
      await waitFor(() => survivor.pbx().channelVar(taken.id, 'TWIN_STATUS') === 'CONNECTED', 'the freed slot to be used');
      taken.hangup();
      for (const call of calls) call.hangup();
      expect(doomed.output()).not.toContain(PASSWORD);
    } finally {
      doomed.child.kill('SIGKILL');
      client.disconnect();
      await survivor.stop();
    }
  });
});
