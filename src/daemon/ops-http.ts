/**
 * The daemon's operations side: Prometheus metrics read from its parts, and the HTTP port
 * (health, metrics, trunk, callbacks, dialer API) serving them.
 */
import type { Callbacks } from '../callbacks/callbacks.js';
import { ClusterGate } from '../cluster/cluster-gate.js';
import type { Config } from '../config/schema.js';
import type { Gate } from '../core/trunk.js';
import { Metrics } from '../http/metrics.js';
import { HttpServer, type HttpHost } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Outbound } from '../outbound/outbound.js';
import type { TwinHttp } from '../twin/http.js';
import type { TwinApi } from '../twin/warmup.js';
import { driversOf, type PbxDrivers } from './pbx-drivers.js';

/** The parts metrics read; the ones made after the metrics (callbacks, the HTTP server) are read when scraped. */
export interface MeteredParts {
  activeCalls(): number;
  gate: Gate;
  drivers: PbxDrivers;
  twin: TwinApi;
  /** Twilio calls' own warm-up client, when Twilio is configured. */
  twilioTwin(): TwinApi | undefined;
  twinHttp: TwinHttp;
  callbacks(): Callbacks | undefined;
  httpServer(): HttpServer | undefined;
}

export function buildMetrics(parts: MeteredParts): Metrics {
  const { gate, drivers, twin } = parts;
  const auth = twin.auth;
  return new Metrics({
    activeCalls: () => parts.activeCalls(),
    trunk: () => gate.snapshot(),
    clusterFallbacks: () => (gate instanceof ClusterGate ? gate.fallbacks : undefined),
    pbxConnections: () => driversOf(drivers).map((d) => ({ pbx: d.pbx, state: d.state })),
    logins: () => ({ ok: auth.logins - auth.loginFailures, failed: auth.loginFailures }),
    warmupRequests: () => twin.requests + (parts.twilioTwin()?.requests ?? 0),
    twinConnections: () => ({ inFlight: parts.twinHttp.inFlight, waiting: parts.twinHttp.waiting }),
    callbacks: () => ({ pending: parts.callbacks()?.pending ?? 0 }),
    callsNotTaken: () => (drivers.freeswitch ? [{ pbx: 'freeswitch', count: drivers.freeswitch.callsNotTaken }] : []),
    httpConnections: () => ({ open: parts.httpServer()?.openConnections ?? 0, refused: parts.httpServer()?.refusedConnections ?? 0 }),
  });
}

/** What the HTTP port asks the daemon itself. */
export interface ServedDaemon {
  config(): Config;
  placeCall: HttpHost['placeCall'];
  readiness: HttpHost['readiness'];
  degraded(): string[];
}

export function buildHttpServer(
  cfg: NonNullable<Config['http']>, daemon: ServedDaemon, parts: { outbound: Outbound; metrics: Metrics; gate: Gate; callbacks?: Callbacks }, log: Logger,
): HttpServer {
  const { outbound, metrics, gate, callbacks } = parts;
  return new HttpServer(cfg, {
    config: () => daemon.config(),
    placeCall: (request) => daemon.placeCall(request),
    onProgress: (listener) => outbound.on('progress', listener),
    metrics: () => metrics.text(),
    readiness: () => daemon.readiness(),
    degraded: () => daemon.degraded(),
    trunk: () => gate.snapshot(),
    receiveCallback: callbacks ? (raw) => callbacks.receive(raw) : undefined,
  }, log);
}
