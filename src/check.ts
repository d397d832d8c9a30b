/**
 * `twin-connector check`: the config, Twin IAM login, each PBX's connection and what the product
 * needs in it (bot endpoint, dialplan places), told in plain words; then what cannot be checked.
 */
import { statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inlineSecretFields, loadConfigFile, readConfigYaml } from './config/load.js';
import { silentLogger } from './log.js';
import { systemClock } from './clock.js';
import { TwinHttp } from './twin/http.js';
import { TwinAuth } from './twin/auth.js';
import type { Config } from './config/schema.js';
import { checkAsterisk } from './check/asterisk.js';
import { checkFreeswitch } from './check/freeswitch.js';
import { Report, type Output } from './check/report.js';

/** Runs every check the config allows; prints one line each to `out`. The exit code: 0 when nothing failed. */
export async function runCheck(configPath: string, out: Output = process.stdout): Promise<number> {
  const config = loadConfigFile(configPath); // a ConfigError is printed by the CLI
  const report = new Report(out);
  report.ok(`config ${configPath} is valid`);
  warnIfSecretsExposed(configPath, report);
  await checkTwinLogin(config, report);
  if (config.asterisk) await checkAsterisk(config.asterisk, config.routes, report);
  if (config.freeswitch) await checkFreeswitch(config.freeswitch, config.routes, report);
  if (config.callbacks) await checkCallbackFolder(config.callbacks.dir, report);
  report.cannotCheck('fallback_context / fallback_extension given in the dialplan\'s Stasis() arguments or twin_* variables: known only when a call comes');
  report.cannotCheck('that Twin\'s SIP side takes calls from this PBX: the first call tells');
  return report.finish();
}

async function checkTwinLogin(config: Config, report: Report): Promise<void> {
  const http = new TwinHttp({ maxConnections: 1, maxWaitMs: 1000 });
  try {
    if (config.twin.token !== undefined) report.ok('Twin: using the static token from the config (not checked until the first call)');
    else {
      await new TwinAuth(config.twin, http, systemClock, silentLogger).token();
      report.ok(`Twin IAM login at ${config.twin.iam_url} as ${config.twin.email}`);
    }
  } catch (err) {
    report.fail((err as Error).message);
  } finally {
    await http.close();
  }
}

/** A warning, not a failure: the file works, but other users on the host can read its secrets. */
function warnIfSecretsExposed(configPath: string, report: Report): void {
  const mode = statSync(configPath).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  const fields = inlineSecretFields(readConfigYaml(configPath));
  if (fields.length === 0) return;
  report.warn(`config ${configPath} is open to group/others (mode ${mode.toString(8).padStart(4, '0')}) and holds secrets inline `
    + `(${fields.join(', ')}): chmod 600 it, or move them to \${ENV} references or <field>_file`);
}

/** The callback folder must be writable by this user (callbacks are stored there before Twin's 200). */
async function checkCallbackFolder(dir: string, report: Report): Promise<void> {
  const probe = join(dir, `.check-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(probe, 'ok', { mode: 0o600 });
    await rm(probe);
    report.ok(`callback folder ${dir} is writable`);
  } catch (err) {
    report.fail(`callback folder ${dir} is not writable by this user: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
