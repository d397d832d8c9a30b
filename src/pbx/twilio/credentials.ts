/**
 * `call --account SID --token TOKEN`: the Twilio account given on the command line, put into the
 * config file's `twilio:` section before it is validated, so a config with no `twilio:` section
 * (nor any PBX) places Twilio calls with the flags alone, and the usual checks still apply (X-
 * header names among them). The token is checked for presence only and never repeated in an error.
 */
import { TwilioSchema } from '../../config/schema.js';

export interface TwilioCredentialFlags {
  account?: string;
  token?: string;
}

export class CredentialError extends Error {}

/** The raw config (as read from YAML) with the flags' account and token; unchanged without flags. */
export function withTwilioCredentials(raw: unknown, flags: TwilioCredentialFlags): unknown {
  if (flags.account === undefined && flags.token === undefined) return raw;
  const config = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const section = (config.twilio !== null && typeof config.twilio === 'object' ? config.twilio : {}) as Record<string, unknown>;
  if (flags.account !== undefined && !TwilioSchema.shape.account_sid.safeParse(flags.account).success) {
    throw new CredentialError(`--account ${JSON.stringify(flags.account.slice(0, 40))}: must be an Account SID: AC and 32 hex digits`);
  }
  if (flags.token !== undefined && flags.token.trim() === '') throw new CredentialError('--token: must not be empty');
  const merged: Record<string, unknown> = { ...section };
  if (flags.account !== undefined) merged.account_sid = flags.account;
  if (flags.token !== undefined) {
    delete merged.auth_token_file; // the flag wins over the file
    merged.auth_token = flags.token;
  }
  if (merged.account_sid === undefined || (merged.auth_token === undefined && merged.auth_token_file === undefined)) {
    throw new CredentialError('--account and --token go together (or put the other one in the config\'s twilio: section)');
  }
  return { ...config, twilio: merged };
}
