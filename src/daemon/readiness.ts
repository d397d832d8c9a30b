/** Why the product cannot take calls now (GET /readyz, GET /v1/status). */
import type { TrunkSnapshot } from '../core/trunk.js';
import type { NotReady } from '../http/server.js';
import type { TwinApi } from '../twin/warmup.js';
import type { PbxDriver } from './pbx-drivers.js';

const READY_LOGIN_WAIT_MS = 1000;

/** What the daemon's own parts say: stopping, a PBX down or without the bot endpoint, the trunk throttled. */
export function partsNotReady(stopping: boolean, drivers: PbxDriver[], trunk: TrunkSnapshot): NotReady[] {
  const problems: NotReady[] = [];
  if (stopping) problems.push({ reason: 'stopping', detail: 'the product is stopping' });
  for (const driver of drivers) {
    if (driver.state !== 'connected') {
      problems.push({ reason: `pbx_down:${driver.pbx}`, detail: `${driver.pbx}: ${driver.state}${driver.lastProblem ? ` (${driver.lastProblem})` : ''}` });
    }
    if (driver.botEndpointMissing) problems.push({ reason: `bot_endpoint_missing:${driver.pbx}`, detail: driver.botEndpointMissing });
  }
  if (trunk.state === 'throttled') {
    const until = new Date(trunk.cooldownUntil ?? 0).toISOString();
    const seenBy = trunk.cluster?.failureNode ? `node ${trunk.cluster.failureNode}: ` : '';
    problems.push({ reason: 'twin_trunk_throttled', detail: `Twin trunk throttled until ${until} (${seenBy}${trunk.lastFailure ?? 'failure'})` });
  }
  return problems;
}

/**
 * A probe must answer fast: a login still running after a second counts as Twin not answering.
 * TwinAuth keeps a token for its lifetime and backs off after a failed login, so probes cannot
 * log in more often than calls would.
 */
export async function twinLoginProblem(twin: TwinApi): Promise<NotReady | undefined> {
  const login = twin.auth.token().then(
    () => undefined,
    (err: Error): NotReady => ({ reason: 'twin_login_failed', detail: err.message }),
  );
  let timer: NodeJS.Timeout | undefined;
  const slow = new Promise<NotReady>((resolve) => {
    timer = setTimeout(() => resolve({ reason: 'twin_login_slow', detail: `Twin IAM did not answer within ${READY_LOGIN_WAIT_MS} ms` }), READY_LOGIN_WAIT_MS);
  });
  try {
    return await Promise.race([login, slow]);
  } finally {
    clearTimeout(timer);
  }
}
