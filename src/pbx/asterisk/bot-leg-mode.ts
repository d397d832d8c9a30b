/**
 * asterisk.bot_leg auto (the default): the fast dialplan mode when Asterisk has the shipped bot
 * dialplan (twin-bot.conf included: its [dial_context] exists), else bridge mode, which needs
 * nothing but the Stasis() line. Asked at each (re)connection, so including the file and
 * reloading the dialplan switches new calls over at the next reconnect.
 */
import { randomUUID } from 'node:crypto';
import type { AsteriskConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { AriRest } from './ari-rest.js';

export type BotLegMode = 'dialplan' | 'bridge';

export async function resolveBotLeg(cfg: AsteriskConfig, rest: AriRest, log: Logger): Promise<BotLegMode> {
  if (cfg.bot_leg !== 'auto') return cfg.bot_leg;
  const found = await dialContextExists(rest, cfg.dial_context);
  if (found === true) {
    log.info({ botLeg: 'dialplan' }, `bot_leg auto: [${cfg.dial_context}] found, the dialplan opens the bot leg`);
    return 'dialplan';
  }
  const why = found === false ? `Asterisk has no [${cfg.dial_context}] (include twin-bot.conf for the fast mode)` : `could not ask Asterisk for [${cfg.dial_context}]: ${found}`;
  log.warn({ botLeg: 'bridge' }, `bot_leg auto: ${why}; bridge mode`);
  return 'bridge';
}

/**
 * DIALPLAN_EXISTS(<context>) through a bridge made for the question (ARI has no dialplan listing,
 * and its global-variable read does not evaluate functions). A string: why it could not be asked.
 */
async function dialContextExists(rest: AriRest, context: string): Promise<boolean | string> {
  const bridgeId = `twin-probe-${randomUUID()}`;
  try {
    await rest.createBridge(bridgeId);
  } catch (err) {
    return (err as Error).message;
  }
  try {
    const expression = `DIALPLAN_EXISTS(${context})`;
    return (await rest.bridgeVariables(bridgeId, [expression]))[expression] === '1';
  } catch (err) {
    return (err as Error).message; // older than 20.20 / 22.10 / 23.4, or no func_dialplan
  } finally {
    await rest.destroyBridge(bridgeId).catch(() => undefined);
  }
}
