/**
 * What the daemon does with an error that escaped every handler (the crash policy):
 * - a promise rejected with nobody awaiting it left no handler half-way through: the error is
 *   logged and the daemon keeps serving its live calls;
 * - an uncaught exception unwound a stack in the middle of some handler, so call and trunk state
 *   can no longer be trusted: it is logged as fatal and the process exits 1. systemd
 *   (Restart=on-failure) starts a fresh one, whose reconnect picks up callers left in the app;
 *   meanwhile the shipped dialplans send new callers to their fallback.
 * Only the error's kind, message and stack are logged (no attached request or config objects), as
 * `error` (pino's `err` serializer would rename the kind), with anything that looks like a
 * credential in a URL or query masked.
 */
import type { Logger } from './log.js';

export function installLastResortHandlers(log: Logger, exit: (code: number) => void = (code) => process.exit(code)): void {
  process.on('unhandledRejection', (reason: unknown) => {
    log.error({ error: describeError(reason) }, 'unhandled promise rejection (a bug): logged, still serving');
  });
  process.on('uncaughtException', (err: unknown) => {
    log.fatal({ error: describeError(err) }, 'uncaught exception (a bug): exiting with code 1 to be restarted with a clean state');
    exit(1);
  });
}

function describeError(err: unknown): { type: string; message: string; stack?: string } {
  if (!(err instanceof Error)) return { type: typeof err, message: maskCredentials(String(err)).slice(0, 500) };
  return { type: err.name, message: maskCredentials(err.message), stack: err.stack && maskCredentials(err.stack) };
}

/** ari-client's websocket URL carries `api_key=user:password`; other URLs may carry `user:password@`. */
export function maskCredentials(text: string): string {
  return text
    .replace(/\b(api_key|password|token|secret)=[^&\s"']*/gi, '$1=[redacted]')
    .replace(/\/\/[^/\s:@]+:[^/\s@]+@/g, '//[redacted]@');
}
