/**
 * FreeSWITCH's side of the bot endpoint check: `sofia status gateway <name>` prints the gateway, or
 * `Invalid Gateway!` when no profile has it (mod_sofia.c, cmd_status); without mod_sofia the API
 * answers `-ERR sofia Command not found!`. A bridge to a missing gateway fails with INVALID_GATEWAY
 * before any INVITE is sent.
 */
import type { BotEndpointVerdict } from '../bot-endpoint.js';

/** The gateway of `[{vars}][[vars]]sofia/gateway/<name>/<user>`; undefined for any other dial string, or a placeholder. */
export function sofiaGatewayOf(dial: string): string | undefined {
  const endpoint = dial.replace(/^(\{[^}]*\}|\[[^\]]*\])*/, '');
  const name = /^sofia\/gateway\/([^/]+)\//.exec(endpoint)?.[1];
  return name !== undefined && !/[{}]/.test(name) ? name : undefined;
}

export async function freeswitchBotEndpoint(botEndpoint: string, api: (command: string) => Promise<string>): Promise<BotEndpointVerdict> {
  const gateway = sofiaGatewayOf(botEndpoint);
  if (gateway === undefined) return { kind: 'unchecked', why: `freeswitch.bot_endpoint ${botEndpoint} goes through no sofia gateway` };
  const what = `sofia/gateway/${gateway}`;
  const answer = (await api(`sofia status gateway ${gateway}`)).trim();
  if (answer.startsWith('-ERR sofia Command not found')) {
    return { kind: 'missing', what, reason: `FreeSWITCH has no mod_sofia loaded, so no gateway '${gateway}' (freeswitch.bot_endpoint ${botEndpoint})` };
  }
  if (answer.startsWith('Invalid Gateway!')) {
    return { kind: 'missing', what, reason: `FreeSWITCH has no sofia gateway '${gateway}' (freeswitch.bot_endpoint ${botEndpoint})` };
  }
  return { kind: 'present', what, state: /^State\s+(\S+)/m.exec(answer)?.[1] };
}
