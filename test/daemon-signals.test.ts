/**
 * The real daemon process and its signals: SIGHUP reloads the config file (a broken file is refused
 * with the reason, never a value from it, and the old config kept), SIGTERM lets the live call
 * finish and exits 0.
 */
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig } from './daemon-process.js';
import { waitFor } from './helpers.js';

const { twin, ari } = simulatorsForProcessTests();

describe('daemon signals', () => {
  it('reloads on SIGHUP, keeps the old config when the new file is broken, and drains calls on SIGTERM', async () => {
    const { path: configPath, config } = writeDaemonConfig({ twin, ari });
    const daemon = runDaemonProcess(configPath);
    const lastBot = () => /"botSettingsId":"([^"]+)"/.exec(twin.warmups.at(-1)?.raw ?? '')?.[1];
    const callAndHangUp = async () => {
      const call = ari.placeCall();
      await waitFor(() => ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'a call to be bridged', 10_000)
        .catch((err: Error) => { throw new Error(`${err.message}\n${daemon.output()}`); });
      call.hangup();
      await call.left;
    };
    try {
      await waitFor(() => daemon.output().includes('connected to Asterisk ARI'), 'the daemon to connect', 15_000);
      await callAndHangUp();
      expect(lastBot()).toBe('bot-default');

      config.routes.default.bot = 'bot-reloaded';
      writeFileSync(configPath, stringify(config));
      daemon.child.kill('SIGHUP');
      await waitFor(() => daemon.output().includes('config reloaded'), 'the reload');
      await callAndHangUp();
      expect(lastBot()).toBe('bot-reloaded');

      writeFileSync(configPath, stringify({ ...config, trunk: { cooldown_s: 'soon' } }));
      daemon.child.kill('SIGHUP');
      await waitFor(() => daemon.output().includes('config not reloaded'), 'the refusal');
      expect(daemon.output()).toContain('"problems":["trunk.cooldown_s: Invalid input: expected number, received string"]');
      await callAndHangUp();
      expect(lastBot()).toBe('bot-reloaded');

      // An unquoted secret that YAML reads as an alias: the log names the place, never the value.
      writeFileSync(configPath, stringify(config).replace(/^(\s+password: ).*$/m, '$1*Kx9-unquoted-secret'));
      daemon.child.kill('SIGHUP');
      await waitFor(() => daemon.output().split('config not reloaded').length === 3, 'the second refusal');
      expect(daemon.output()).toMatch(/config\.yaml line \d+:\d+: YAML syntax error \(BAD_ALIAS\)/);
      expect(daemon.output()).not.toContain('Kx9');

      const live = ari.placeCall();
      await waitFor(() => ari.channel(live.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the live call to be bridged');
      daemon.child.kill('SIGTERM');
      await waitFor(() => daemon.output().includes('stopping: waiting for live calls to end'), 'the stop to begin');
      let exited = false;
      void daemon.exited.then(() => { exited = true; });
      await new Promise((r) => setTimeout(r, 300));
      expect(exited).toBe(false);
      expect(ari.channel(live.id)?.vars.get('TWIN_STATUS')).toBe('CONNECTED');
      live.hangup();
      expect(await daemon.exited).toBe(0);
      expect(daemon.output()).toContain('"msg":"stopped"');
    } finally {
      daemon.child.kill('SIGKILL');
    }
  }, 60_000);
});
