/**
 * The real daemon process against ARI frames ari-client cannot handle (issue 13, item 5): an event
 * type missing from the api-docs and a frame that is not JSON, mid-call. ari-client throws from its
 * websocket callback on both; the process must drop them and keep serving.
 */
import { describe, expect, it } from 'vitest';
import { runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig } from './daemon-process.js';
import { waitFor } from './helpers.js';

const { twin, ari } = simulatorsForProcessTests();

describe('daemon process and bad ARI frames', () => {
  it('drops an unknown event type (logged once per type) and a non-JSON frame mid-call, and serves the next call', async () => {
    const { path } = writeDaemonConfig({ twin, ari });
    const daemon = runDaemonProcess(path);
    let exitCode: number | null | undefined;
    void daemon.exited.then((code) => { exitCode = code; });
    const bridged = (id: string) => waitFor(() => ari.channel(id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'a call to be bridged', 10_000)
      .catch((err: Error) => { throw new Error(`${err.message}\n${daemon.output()}`); });
    try {
      await waitFor(() => daemon.output().includes('connected to Asterisk ARI'), 'the daemon to connect', 15_000);
      const live = ari.placeCall();
      await bridged(live.id);
      const unknown = JSON.stringify({ type: 'ChannelTeleported', timestamp: '2026-11-21T12:00:00.000+0000', channel: { id: live.id }, application: 'twin' });
      ari.sendRawFrame(unknown);
      ari.sendRawFrame(unknown);
      ari.sendRawFrame('<html>502 Bad Gateway</html>');
      await waitFor(() => daemon.output().includes('not JSON'), 'the non-JSON frame to be dropped');
      expect(exitCode).toBeUndefined();
      expect(daemon.output().match(/missing from its api-docs/g)).toHaveLength(1);
      expect(daemon.output()).not.toContain('502 Bad Gateway'); // the frame itself is never logged

      live.hangup();
      expect(await live.left).toMatchObject({ kind: 'hungup-by-caller' });
      const next = ari.placeCall();
      await bridged(next.id);
      next.hangup();
      await next.left;
      expect(exitCode).toBeUndefined();
    } finally {
      daemon.child.kill('SIGKILL');
    }
  }, 60_000);
});
