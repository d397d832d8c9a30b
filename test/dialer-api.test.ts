/** The dialer API on the daemon's HTTP port, through real HTTP, against the simulators. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CALL_STATES } from '../src/outbound/outbound.js';
import type { Lab } from '../src/sim/lab.js';
import { labPerTest, waitFor } from './helpers.js';

const TOKEN = 'dialer-token-0123456789';

describe('dialer API', () => {
  const startLab = labPerTest('asterisk');
  async function start(): Promise<{ lab: Lab; api: (method: string, path: string, body?: unknown, token?: string) => Promise<{ status: number; json: any }> }> {
    const lab = await startLab({ config: { http: { listen_port: 0, api_token: TOKEN }, outbound: { caller_id: '+12025550143' } } });
    const base = `http://127.0.0.1:${lab.daemon.httpServer!.port}`;
    const api = async (method: string, path: string, body?: unknown, token = TOKEN) => {
      const res = await fetch(base + path, {
        method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json() };
    };
    return { lab, api };
  }

  it('places a call and reports its state and outcome', async () => {
    const { lab, api } = await start();
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 });
    const placed = await api('POST', '/v1/calls', { to: '+442079460018', bot: 'sales', variables: { lang: 'en' }, record: true });
    expect(placed.status).toBe(202);
    expect(placed.json.id).toMatch(/^[0-9a-f-]{36}$/);

    let done = await api('GET', `/v1/calls/${placed.json.id}`);
    expect(['queued', 'warming-up', 'ringing', 'connecting', 'connected']).toContain(done.json.state);
    await waitFor(() => lab.daemon.activeCalls === 0, 'the call to end');
    done = await api('GET', `/v1/calls/${placed.json.id}`);
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ id: placed.json.id, to: '+442079460018', from: '+12025550143', bot: 'sales', outcome: { status: 'connected', endedBy: 'bot' } });
    expect(lab.ari.dials.map((d) => d.to)).toEqual(['+442079460018']);
  });

  it('answers 400 naming the field for bad bodies, 401 without the token, 404 for unknown ids', async () => {
    const { lab, api } = await start();
    expect(await api('POST', '/v1/calls', { to: '12' })).toEqual({ status: 400, json: { field: 'to', error: expect.stringContaining('not in E.164 form') } });
    expect(await api('POST', '/v1/calls', { to: '+442079460018', record: 'yes' })).toMatchObject({ status: 400, json: { field: 'record' } });
    expect(await api('POST', '/v1/calls', { to: '+442079460018', colour: 'blue' })).toMatchObject({ status: 400, json: { field: 'colour' } });
    expect(await api('POST', '/v1/calls', { to: '+442079460018', variables: { x: 'a\r\nX-Evil: 1' } })).toMatchObject({ status: 400, json: { field: 'variables.x' } });
    expect(await api('POST', '/v1/calls', '{nope')).toMatchObject({ status: 400, json: { error: 'body is not JSON' } });
    expect(await api('POST', '/v1/calls', { to: '+442079460018' }, 'wrong-token')).toMatchObject({ status: 401 });
    expect(await api('GET', '/v1/calls/nope')).toMatchObject({ status: 404 });
    expect(lab.ari.dials).toHaveLength(0);
    expect(lab.twin.warmups).toHaveLength(0);
  });

  it('answers POST with the state the README shows, and every state a call passes through is one the README lists (issue 22, item 1)', async () => {
    const readme = readFileSync('README.md', 'utf8');
    const shown = JSON.parse(/# 202 (\{.*\})/.exec(readme)![1]!) as { state: string };
    const listed = [.../States: ((?:`[a-z-]+`(?: → )?)+)/.exec(readme)![1]!.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]);
    expect(listed).toEqual([...CALL_STATES]);

    const { lab, api } = await start();
    lab.ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const passed: string[] = [];
    lab.daemon.outbound.on('progress', (p: { state: string }) => passed.push(p.state));
    const placed = await api('POST', '/v1/calls', { to: '+442079460018', bot: 'sales' });
    expect(placed.json.state).toBe(shown.state);
    await waitFor(() => lab.daemon.activeCalls === 0, 'the call to end');
    expect((await api('GET', `/v1/calls/${placed.json.id}`)).json.state).toBe('ended');
    expect([placed.json.state, ...passed]).toEqual(['queued', 'warming-up', 'ringing', 'connecting', 'connected', 'ended']);
  });
});
