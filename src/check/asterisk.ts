/**
 * What `twin-connector check` asks Asterisk over ARI: the login, the bot's and the outbound PJSIP
 * endpoints (GET /endpoints/PJSIP/<name>), and the dialplan places the config names
 * (DIALPLAN_EXISTS() read through GET /bridges/{id}/variables on a bridge made for the purpose).
 * ARI cannot list music-on-hold classes or tone zones: those are named as not checked.
 */
import { randomUUID } from 'node:crypto';
import type { AsteriskConfig, Config } from '../config/schema.js';
import { ariRequest, probeAri } from '../pbx/asterisk/ari-rest.js';
import { asteriskBotEndpoint, pjsipEndpointOf, type EndpointLookup } from '../pbx/asterisk/bot-endpoint.js';
import { transferHandlingOf } from '../pbx/asterisk/driver.js';
import { placeOf, routeTargets, uniqueTargets, type DialplanTarget } from './dialplan-targets.js';
import type { Report } from './report.js';

export async function checkAsterisk(cfg: AsteriskConfig, routes: Config['routes'], report: Report): Promise<void> {
  const probe = await probeAri(cfg);
  if (!probe.ok) return report.fail(probe.problem);
  report.ok(`Asterisk ARI at ${cfg.url} (Asterisk ${probe.version}), user '${cfg.username}'`);
  try {
    await checkEndpoints(cfg, report);
    await checkDialplan(cfg, asteriskTargets(cfg, routes, probe.version), probe.version, report);
  } catch (err) {
    report.fail(`could not finish asking Asterisk over ARI: ${(err as Error).message}`);
  }
  if (cfg.hold === 'moh') {
    report.cannotCheck(`Asterisk: the music-on-hold class '${cfg.moh_class}' (asterisk.hold: moh): ARI cannot list classes (see \`moh show classes\`)`);
  }
  report.cannotCheck('Asterisk: a tone zone for an in-band ringback ([from-customers-answered], asterisk.hold: ring on an answered caller): ARI cannot read indications.conf (see `indication show`)');
}

async function checkEndpoints(cfg: AsteriskConfig, report: Report): Promise<void> {
  const lookup = endpointLookup(cfg);
  const bot = await asteriskBotEndpoint(cfg.bot_endpoint, lookup);
  report.botEndpoint('Asterisk', 'asterisk.bot_endpoint', bot, 'define it in pjsip.conf (type=endpoint, as in dialplan/asterisk/pjsip.conf) and `module reload res_pjsip.so`');
  if (bot.kind === 'present' && bot.state === 'offline') report.warn(`Asterisk shows the bot endpoint ${bot.what} offline: its contact does not answer OPTIONS (qualify)`);
  const outbound = pjsipEndpointOf(cfg.outbound_endpoint);
  if (outbound === undefined) return;
  if (await lookup('PJSIP', outbound)) report.ok(`Asterisk has the outbound endpoint PJSIP/${outbound} (asterisk.outbound_endpoint)`);
  else report.warn(`Asterisk has no PJSIP endpoint '${outbound}' (asterisk.outbound_endpoint ${cfg.outbound_endpoint}): outbound calls would fail`);
}

/** GET /endpoints/{tech}/{resource}: the endpoint, undefined for 404 "Endpoint not found". */
function endpointLookup(cfg: AsteriskConfig): EndpointLookup {
  return async (tech, resource) => {
    const { status, body } = await ariRequest(cfg, 'GET', `/endpoints/${encodeURIComponent(tech)}/${encodeURIComponent(resource)}`);
    if (status === 404) return undefined;
    if (status !== 200) throw new Error(`GET /endpoints/${tech}/${resource} answered HTTP ${status}`);
    return body as { state?: string };
  };
}

/** The route targets, and the contexts Asterisk itself dials into: [twin-bot] and the transfer context when used. */
function asteriskTargets(cfg: AsteriskConfig, routes: Config['routes'], version: string): DialplanTarget[] {
  const own: DialplanTarget[] = [];
  if (cfg.bot_leg === 'dialplan') own.push({ context: cfg.dial_context, use: 'asterisk.dial_context, bot_leg: dialplan' });
  const handling = cfg.transfer_handling === 'auto' ? transferHandlingOf(version) : cfg.transfer_handling;
  if (handling === 'core' || cfg.bot_leg === 'dialplan') own.push({ context: cfg.transfer_context, use: 'asterisk.transfer_context' });
  return uniqueTargets([...own, ...routeTargets(routes)]);
}

/**
 * ARI has no dialplan listing, and GET /asterisk/variable does not evaluate functions (recording f1:
 * DEVICE_STATE() read back ''). GET /bridges/{id}/variables does, with no channel (Asterisk 20.20,
 * 22.10, 23.4; res/ari/resource_bridges.c), and func_dialplan's DIALPLAN_EXISTS() needs none. The
 * bridge is ours for the check's duration, named outside the product's `twin-` bridges.
 */
async function checkDialplan(cfg: AsteriskConfig, targets: DialplanTarget[], version: string, report: Report): Promise<void> {
  if (targets.length === 0 && cfg.bot_leg !== 'auto') return;
  const bridge = `/bridges/check-twin-connector-${randomUUID()}`;
  const created = await ariRequest(cfg, 'POST', bridge, { type: 'mixing', name: 'twin-connector check' });
  if (created.status !== 200) return report.cannotCheck(`Asterisk: the dialplan places ${list(targets)}: no bridge to ask through (HTTP ${created.status})`);
  try {
    if (cfg.bot_leg === 'auto') await reportBotLegMode(cfg, bridge, report);
    for (const [i, target] of targets.entries()) {
      const exists = await dialplanExists(cfg, bridge, target);
      if (typeof exists === 'string') {
        return report.cannotCheck(`Asterisk ${version}: the dialplan places ${list(targets.slice(i))}: DIALPLAN_EXISTS() over ARI `
          + `answered ${exists} (it needs Asterisk 20.20, 22.10, 23.4 or later, and func_dialplan; see \`dialplan show <context>\`)`);
      }
      if (exists) report.ok(`Asterisk dialplan has ${placeOf(target)} (${target.use})`);
      else report.fail(`Asterisk dialplan has no ${placeOf(target)} (${target.use}): a caller sent there is hung up`);
    }
  } finally {
    await ariRequest(cfg, 'DELETE', bridge).catch(() => undefined);
  }
}

/** bot_leg auto takes the dialplan mode when Asterisk has the bot dialplan's context (as the daemon asks at each connection). */
async function reportBotLegMode(cfg: AsteriskConfig, bridge: string, report: Report): Promise<void> {
  const context = cfg.dial_context;
  const exists = await dialplanExists(cfg, bridge, { context, use: 'asterisk.dial_context' });
  if (exists === true) report.ok(`bot_leg auto: Asterisk has [${context}] (twin-bot.conf), so the dialplan opens the bot leg (the fast mode)`);
  else if (exists === false) {
    report.warn(`bot_leg auto: Asterisk has no [${context}], so calls take bridge mode (slower above ~100 calls/s); `
      + 'include twin-bot.conf and `dialplan reload` for the dialplan mode');
  } else report.cannotCheck(`bot_leg auto: which mode calls take (DIALPLAN_EXISTS() over ARI answered ${exists}; the daemon then uses bridge mode)`);
}

/**
 * true/false; or, when this Asterisk could not evaluate it, its answer (`HTTP 404 Resource not found`
 * from a version without the call, `HTTP 500 Unable to read provided function` without func_dialplan).
 */
async function dialplanExists(cfg: AsteriskConfig, bridge: string, t: DialplanTarget): Promise<boolean | string> {
  const args = t.extension === undefined ? t.context : `${t.context},${t.extension},${t.priority ?? 1}`;
  const fn = `DIALPLAN_EXISTS(${args})`;
  const { status, body } = await ariRequest(cfg, 'GET', `${bridge}/variables`, { variables: fn });
  const answer = body as { variables?: Record<string, string>; message?: string } | undefined;
  if (status !== 200) return `HTTP ${status}${answer?.message ? ` ${answer.message}` : ''}`;
  return answer?.variables?.[fn] === '1';
}

function list(targets: DialplanTarget[]): string {
  return targets.map((t) => `${placeOf(t)} (${t.use})`).join(', ');
}
