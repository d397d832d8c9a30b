import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths that may carry a secret (customers' URLs may carry a token in their query). pino replaces them before the line is written, so a token or
 * password handed to a log call by mistake still never reaches the output.
 */
const REDACTED_PATHS = [
  'password', '*.password', 'token', '*.token', 'authorization', '*.authorization',
  'headers.authorization', '*.headers.authorization', 'config.twin.password', 'config.twin.token',
  'config.asterisk.password', 'config.freeswitch.esl_password', 'config.http.api_token', 'config.callbacks.secret', 'config.twilio.auth_token', 'auth_token', '*.auth_token',
  'config.callbacks.forward_to', 'config.cluster.password', 'config.cluster.tls', 'config.twin.callback_urls', 'refreshToken', '*.refreshToken',
];

/** Fields that hold phone numbers; masked when log.mask_numbers is on. */
const NUMBER_PATHS = ['outcome.caller', 'outcome.dialed', 'outbound.to', 'outbound.from', 'caller', 'dialed', 'to', 'from'];

export interface LogOptions {
  level?: string;
  /** Keep only the last 3 digits of phone numbers. */
  maskNumbers?: boolean;
  /** Destination stream; defaults to stdout. Tests pass a buffer to read the lines back. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LogOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { app: 'twin-connector' },
      redact: {
        paths: options.maskNumbers ? [...REDACTED_PATHS, ...NUMBER_PATHS] : REDACTED_PATHS,
        censor: (value, path) => (NUMBER_PATHS.includes(path.join('.')) ? maskNumber(value) : '[redacted]'),
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? process.stdout,
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });

/** '+447700900123' → '+*********123'. */
export function maskNumber(value: unknown): string {
  return String(value).replace(/\d(?=\d{3})/g, '*');
}
