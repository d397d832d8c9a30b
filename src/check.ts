/** `twin-connector check`: config, Twin IAM login and PBX connection, told in plain words. */
import { statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inlineSecretFields, loadConfigFile, readConfigYaml } from './config/load.js';
import { silentLogger } from './log.js';
import { systemClock } from './clock.js';
import { TwinHttp } from './twin/http.js';
import { TwinAuth } from './twin/auth.js';
import { probeAri } from './pbx/asterisk/ari-rest.js';
import { EslControl } from './pbx/freeswitch/esl.js';
import type { FreeswitchConfig } from './config/schema.js';

const ok = (line: string) => process.stdout.write(`ok    ${line}\n`);
const fail = (line: string) => process.stdout.write(`FAIL  ${line}\n`);
const warn = (line: string) => process.stdout.write(`WARN  ${line}\n`);

export async function runCheck(configPath: string): Promise<number> {
  const config = loadConfigFile(configPath); // a ConfigError is printed by the CLI
  ok(`config ${configPath} is valid`);
  warnIfSecretsExposed(configPath);
  let failures = 0;

  const http = new TwinHttp({ maxConnections: 1, maxWaitMs: 1000 });
  try {
    if (config.twin.token !== undefined) ok('Twin: using the static token from the config (not checked until the first call)');
    else {
      await new TwinAuth(config.twin, http, systemClock, silentLogger).token();
      ok(`Twin IAM login at ${config.twin.iam_url} as ${config.twin.email}`);
    }
  } catch (err) {
    failures += 1;
    fail((err as Error).message);
  } finally {
    await http.close();
  }

  if (config.asterisk) {
    const probe = await probeAri(config.asterisk);
    if (probe.ok) ok(`Asterisk ARI at ${config.asterisk.url} (Asterisk ${probe.version}), user '${config.asterisk.username}'`);
    else {
      failures += 1;
      fail(probe.problem);
    }
  }
  if (config.freeswitch) failures += await checkFreeswitch(config.freeswitch);
  if (config.callbacks) failures += await checkCallbackFolder(config.callbacks.dir);
  process.stdout.write(failures === 0 ? 'all checks passed\n' : `${failures} check(s) failed\n`);
  return failures === 0 ? 0 : 1;
}

/** A warning, not a failure: the file works, but other users on the host can read its secrets. */
function warnIfSecretsExposed(configPath: string): void {
  const mode = statSync(configPath).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  const fields = inlineSecretFields(readConfigYaml(configPath));
  if (fields.length === 0) return;
  warn(`config ${configPath} is open to group/others (mode ${mode.toString(8).padStart(4, '0')}) and holds secrets inline `
    + `(${fields.join(', ')}): chmod 600 it, or move them to \${ENV} references or <field>_file`);
}

/** Logs in to FreeSWITCH's event socket and asks for its status; the call socket port is not probed. */
async function checkFreeswitch(cfg: FreeswitchConfig): Promise<number> {
  try {
    const control = await EslControl.connect(cfg.esl_host, cfg.esl_port, cfg.esl_password, cfg.command_timeout_ms);
    try {
      const status = await control.api('status');
      const version = /Version ([^\s)]+)/.exec(status)?.[1] ?? 'unknown version';
      ok(`FreeSWITCH ESL at ${cfg.esl_host}:${cfg.esl_port} (FreeSWITCH ${version}); dialplan socket target ${cfg.listen_host}:${cfg.listen_port}`);
      await warnOfMissingContexts(control);
    } finally {
      control.close();
    }
    return 0;
  } catch (err) {
    fail((err as Error).message);
    return 1;
  }
}

/** The shipped contexts the product sends callers to; without them a caller is dropped, not served. */
const SHIPPED_FREESWITCH_CONTEXTS: Record<string, string> = {
  'twin-after-socket': 'twin-after-socket.xml: callers the product did not take, and the bot hanging up first',
  'twin-transfers': 'twin-transfers.xml: a bot\'s REFER (every bridged caller has force_transfer_context=twin-transfers)',
};

async function warnOfMissingContexts(control: EslControl): Promise<void> {
  for (const [context, why] of Object.entries(SHIPPED_FREESWITCH_CONTEXTS)) {
    const found = await control.api(`xml_locate dialplan context name ${context}`);
    if (!found.trimStart().startsWith('<context')) warn(`FreeSWITCH has no dialplan context ${context}: install dialplan/freeswitch/${why}`);
  }
}

/** The callback folder must be writable by this user (callbacks are stored there before Twin's 200). */
async function checkCallbackFolder(dir: string): Promise<number> {
  const probe = join(dir, `.check-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(probe, 'ok', { mode: 0o600 });
    await rm(probe);
    ok(`callback folder ${dir} is writable`);
    return 0;
  } catch (err) {
    fail(`callback folder ${dir} is not writable by this user: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return 1;
  }
}
