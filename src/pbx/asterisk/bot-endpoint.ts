/**
 * Asterisk's side of the bot endpoint check: `GET /ari/endpoints/PJSIP/<name>` answers 200 with the
 * endpoint, or 404 `{"message":"Endpoint not found"}` when pjsip.conf has no such endpoint
 * (res/ari/resource_endpoints.c, ast_ari_endpoints_get; recording f1 shows the 200 for `twin`).
 */
import type { BotEndpointVerdict } from '../bot-endpoint.js';

/** An ARI endpoint as GET /endpoints/{tech}/{resource} shows it; undefined for a 404. */
export type EndpointLookup = (tech: string, resource: string) => Promise<{ state?: string } | undefined>;

/**
 * The PJSIP endpoint a dial string goes through: `PJSIP/<endpoint>`, `PJSIP/<endpoint>/<uri>` or
 * `PJSIP/<user>@<endpoint>`; undefined for another technology, or when a placeholder names it.
 */
export function pjsipEndpointOf(dial: string): string | undefined {
  const first = /^PJSIP\/([^/]+)/.exec(dial)?.[1];
  if (first === undefined) return undefined;
  const name = first.slice(first.lastIndexOf('@') + 1);
  return name !== '' && !/[{}]/.test(name) ? name : undefined;
}

export async function asteriskBotEndpoint(botEndpoint: string, lookup: EndpointLookup): Promise<BotEndpointVerdict> {
  const name = pjsipEndpointOf(botEndpoint);
  if (name === undefined) return { kind: 'unchecked', why: `asterisk.bot_endpoint ${botEndpoint} names no PJSIP endpoint ARI can look up` };
  const what = `PJSIP/${name}`;
  const found = await lookup('PJSIP', name);
  if (found) return { kind: 'present', what, state: found.state };
  return { kind: 'missing', what, reason: `Asterisk has no PJSIP endpoint '${name}' (asterisk.bot_endpoint ${botEndpoint})` };
}
