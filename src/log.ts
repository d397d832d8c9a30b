import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths that may carry a secret. pino replaces them before the line is written, so a token or
 * password handed to a log call by mistake still never reaches the output.
 */
const REDACTED_PATHS = [
  'password', '*.password', 'token', '*.token', 'authorization', '*.authorization',
  'headers.authorization', '*.headers.authorization', 'config.twin.password', 'config.twin.token',
  'config.asterisk.password', 'refreshToken', '*.refreshToken',
];

export interface LogOptions {
  level?: string;
  /** Destination stream; defaults to stdout. Tests pass a buffer to read the lines back. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LogOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { app: 'twin-connector' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? process.stdout,
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
