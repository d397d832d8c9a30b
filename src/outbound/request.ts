/**
 * One outbound call as the CLI, a campaign row or the dialer API asks for it, validated into
 * E.164 numbers and safe values. Errors name the field and say what is wrong.
 */
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { NumberError, toE164 } from './numbers.js';

const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/;
const text = (max: number) => z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`)
  .regex(NO_CONTROL, 'must not contain control characters');

const CallRequestSchema = z.object({
  to: z.string({ message: 'is required (the number to call)' }).max(40, 'must be at most 40 characters'),
  from: z.string().max(40, 'must be at most 40 characters').optional(),
  bot: text(128).optional(),
  variables: z.record(
    z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'variable names are letters, digits, _ . - (at most 64)'),
    z.string().max(256, 'must be at most 256 characters').regex(NO_CONTROL, 'must not contain control characters'),
  ).default({}),
  record: z.boolean().default(false),
  external_id: text(128).optional(),
  pbx: z.enum(['asterisk', 'freeswitch', 'twilio'], { message: "must be 'asterisk', 'freeswitch' or 'twilio'" }).optional(),
}).strict();

export type CallRequestInput = z.input<typeof CallRequestSchema>;

export interface CallRequest {
  to: string;
  from: string;
  bot?: string;
  variables: Record<string, string>;
  record: boolean;
  externalId?: string;
  pbx: 'asterisk' | 'freeswitch' | 'twilio';
}

export class RequestError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

/** Validates and normalises; throws RequestError naming the first bad field. */
export function parseCallRequest(input: unknown, config: Config): CallRequest {
  const parsed = CallRequestSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || '(body)';
    const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
    throw new RequestError(issue.code === 'unrecognized_keys' ? issue.keys[0] ?? field : field, message);
  }
  const body = parsed.data;
  const country = config.outbound.default_country;
  const fromRaw = body.from ?? config.outbound.caller_id;
  if (fromRaw === undefined) throw new RequestError('from', 'no caller ID: give one, or set outbound.caller_id');
  const pbx = body.pbx ?? defaultWayOut(config);
  if (!config[pbx]) throw new RequestError('pbx', `${pbx} is not configured`);
  return {
    to: number('to', body.to, country),
    from: number('from', fromRaw, country),
    bot: body.bot,
    variables: body.variables,
    record: body.record,
    externalId: body.external_id,
    pbx,
  };
}

/** The first configured of Asterisk, FreeSWITCH, Twilio. */
export function defaultWayOut(config: Config): CallRequest['pbx'] {
  return config.asterisk ? 'asterisk' : config.freeswitch ? 'freeswitch' : config.twilio ? 'twilio' : 'asterisk';
}

function number(field: string, raw: string, country?: string): string {
  try {
    return toE164(field, raw, country);
  } catch (err) {
    if (err instanceof NumberError) throw new RequestError(field, err.message.slice(field.length + 2));
    throw err;
  }
}
