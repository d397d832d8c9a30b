/**
 * What `twin-connector check` asks FreeSWITCH over the event socket: the login, the bot's sofia
 * gateway (`sofia status gateway <name>`), the shipped contexts the product sends callers to (a
 * warning, as before), and the contexts the routes name (`xml_locate dialplan context name <ctx>`).
 * Whether an extension matches cannot be asked: XML conditions are regular expressions.
 */
import type { Config, FreeswitchConfig } from '../config/schema.js';
import { EslControl } from '../pbx/freeswitch/esl.js';
import { freeswitchBotEndpoint } from '../pbx/freeswitch/bot-endpoint.js';
import { routeTargets, type DialplanTarget } from './dialplan-targets.js';
import type { Report } from './report.js';

/** The shipped contexts the product sends callers to; without them a caller is dropped, not served. */
const SHIPPED_CONTEXTS: Record<string, string> = {
  'twin-after-socket': 'twin-after-socket.xml: callers the product did not take, the bot failing or hanging up first',
  'twin-transfers': 'twin-transfers.xml: a bot\'s REFER (every bridged caller has force_transfer_context=twin-transfers)',
};

/** Logs in to FreeSWITCH's event socket and asks; the call socket port is not probed. */
export async function checkFreeswitch(cfg: FreeswitchConfig, routes: Config['routes'], report: Report): Promise<void> {
  let control: EslControl;
  try {
    control = await EslControl.connect(cfg.esl_host, cfg.esl_port, cfg.esl_password, cfg.command_timeout_ms);
  } catch (err) {
    return report.fail((err as Error).message);
  }
  try {
    const status = await control.api('status');
    const version = /Version ([^\s)]+)/.exec(status)?.[1] ?? 'unknown version';
    report.ok(`FreeSWITCH ESL at ${cfg.esl_host}:${cfg.esl_port} (FreeSWITCH ${version}); dialplan socket target ${cfg.listen_host}:${cfg.listen_port}`);
    const api = (command: string) => control.api(command);
    report.botEndpoint('FreeSWITCH', 'freeswitch.bot_endpoint', await freeswitchBotEndpoint(cfg.bot_endpoint, api),
      'add it to a sofia profile (as in dialplan/freeswitch/sip_profiles-external-twin.xml), `reloadxml` and `sofia profile external rescan`');
    await warnOfMissingShippedContexts(api, report);
    await checkRouteContexts(api, routeTargets(routes), report);
  } catch (err) {
    report.fail(`could not finish asking FreeSWITCH over ESL: ${(err as Error).message}`);
  } finally {
    control.close();
  }
  if (cfg.hold === 'moh') report.cannotCheck(`FreeSWITCH: the hold music ${cfg.moh_source} (freeswitch.hold: moh) is not asked for`);
}

async function hasContext(api: (command: string) => Promise<string>, context: string): Promise<boolean> {
  return (await api(`xml_locate dialplan context name ${context}`)).trimStart().startsWith('<context');
}

async function warnOfMissingShippedContexts(api: (command: string) => Promise<string>, report: Report): Promise<void> {
  for (const [context, why] of Object.entries(SHIPPED_CONTEXTS)) {
    const xml = await api(`xml_locate dialplan context name ${context}`);
    if (!xml.trimStart().startsWith('<context')) report.warn(`FreeSWITCH has no dialplan context ${context}: install dialplan/freeswitch/${why}`);
    else if (context === 'twin-after-socket' && !xml.includes('expression="^bot_failed$"')) {
      report.warn("FreeSWITCH's twin-after-socket has no extension bot_failed (it predates the hand-back of issue 20): install the "
        + "shipped dialplan/freeswitch/twin-after-socket.xml, and dialplan-twin.xml's `socket … full` + `bridge ${twin_bot_dial}`; "
        + "until then the bot leg is bridged over each call's socket");
    }
  }
}

/** Each context once; its extensions are listed as not checked. */
async function checkRouteContexts(api: (command: string) => Promise<string>, targets: DialplanTarget[], report: Report): Promise<void> {
  const byContext = new Map<string, DialplanTarget[]>();
  for (const t of targets) byContext.set(t.context, [...(byContext.get(t.context) ?? []), t]);
  for (const [context, uses] of byContext) {
    const fields = uses.map((t) => t.use).join(', ');
    if (await hasContext(api, context)) report.ok(`FreeSWITCH dialplan has context ${context} (${fields})`);
    else report.fail(`FreeSWITCH has no dialplan context ${context} (${fields}): a caller sent there is hung up (NO_ROUTE_DESTINATION)`);
  }
  const extensions = targets.filter((t) => t.extension !== undefined).map((t) => `${t.extension}@${t.context}`);
  if (extensions.length > 0) {
    report.cannotCheck(`FreeSWITCH: that these extensions match in their context: ${extensions.join(', ')} (XML conditions are regular expressions ESL cannot run)`);
  }
}
